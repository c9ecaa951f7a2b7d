import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

/// The retention policy on the command line, restic's names; any `--keep-*` replaces the
/// configured rules, the floors stay unless given.
struct PolicyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Keep the n newest snapshots.", valueName: "n")) var keepLast: Int?
    @Option(help: ArgumentHelp("Keep the newest snapshot of each of the n latest hours.", valueName: "n")) var keepHourly: Int?
    @Option(help: ArgumentHelp("Keep the newest snapshot of each of the n latest days.", valueName: "n")) var keepDaily: Int?
    @Option(help: ArgumentHelp("Keep the newest snapshot of each of the n latest ISO weeks.", valueName: "n")) var keepWeekly: Int?
    @Option(help: ArgumentHelp("Keep the newest snapshot of each of the n latest months.", valueName: "n")) var keepMonthly: Int?
    @Option(help: ArgumentHelp("Keep the newest snapshot of each of the n latest years.", valueName: "n")) var keepYearly: Int?
    @Option(help: ArgumentHelp("Keep every snapshot younger than this (30d, 2w, 6m, 1y, 12h).", valueName: "duration")) var keepWithin: String?
    @Option(help: ArgumentHelp("Keep the newest snapshot of every hour within this duration.", valueName: "duration")) var keepWithinHourly: String?
    @Option(help: ArgumentHelp("Keep the newest snapshot of every day within this duration.", valueName: "duration")) var keepWithinDaily: String?
    @Option(help: ArgumentHelp("Keep the newest snapshot of every week within this duration.", valueName: "duration")) var keepWithinWeekly: String?
    @Option(help: ArgumentHelp("Keep the newest snapshot of every month within this duration.", valueName: "duration")) var keepWithinMonthly: String?
    @Option(help: ArgumentHelp("Keep the newest snapshot of every year within this duration.", valueName: "duration")) var keepWithinYearly: String?
    @Option(name: .customLong("keep-tag"), help: ArgumentHelp("Keep every snapshot with this tag (repeatable).", valueName: "tag")) var keepTags: [String] = []
    @Option(help: ArgumentHelp("Never remove a snapshot younger than this (default: [retention] min_age_days, else 1d).", valueName: "duration")) var minAge: String?
    @Option(help: ArgumentHelp("Never remove a safety snapshot younger than this (default 30d).", valueName: "duration")) var safetyMinAge: String?

    func validate() throws {
        for (name, value) in [("--keep-last", keepLast), ("--keep-hourly", keepHourly), ("--keep-daily", keepDaily),
                              ("--keep-weekly", keepWeekly), ("--keep-monthly", keepMonthly), ("--keep-yearly", keepYearly)] {
            if let value, value < 0 { throw ValidationError("\(name) must be 0 or more.") }
        }
    }

    /// The policy to apply: the configured one with the command line over it.
    func policy(configured: RetentionPolicy) throws -> RetentionPolicy {
        let spans = try [keepWithin, keepWithinHourly, keepWithinDaily, keepWithinWeekly, keepWithinMonthly, keepWithinYearly]
            .map { try $0.map(RetentionDuration.init(parsing:)) }
        let counts = [keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly]
        var policy = configured
        if counts.contains(where: { $0 != nil }) || spans.contains(where: { $0 != nil }) || !keepTags.isEmpty {
            policy = RetentionPolicy()
            policy.minimumAge = configured.minimumAge
            policy.safetyMinimumAge = configured.safetyMinimumAge
            (policy.keepLast, policy.keepHourly, policy.keepDaily) = (counts[0], counts[1], counts[2])
            (policy.keepWeekly, policy.keepMonthly, policy.keepYearly) = (counts[3], counts[4], counts[5])
            (policy.keepWithin, policy.keepWithinHourly, policy.keepWithinDaily) = (spans[0], spans[1], spans[2])
            (policy.keepWithinWeekly, policy.keepWithinMonthly, policy.keepWithinYearly) = (spans[3], spans[4], spans[5])
            policy.keepTags = keepTags
        }
        if let minAge { policy.minimumAge = try RetentionDuration(parsing: minAge) }
        if let safetyMinAge { policy.safetyMinimumAge = try RetentionDuration(parsing: safetyMinAge) }
        return policy
    }
}

/// Prune's tuning, restic's names.
struct PruneFlags: ParsableArguments {
    @Option(help: ArgumentHelp("Unused data tolerated in packs still in use: a percentage (5%), a size (500M) or `unlimited`.", valueName: "limit"))
    var maxUnused = "5%"

    @Option(help: ArgumentHelp("Rewrite at most this much pack data in one run (e.g. 2G).", valueName: "size"))
    var maxRepackSize: String?

    @Option(help: ArgumentHelp("Delete packs no index names only when older than this (1h, 2d; default and minimum 1h).", valueName: "duration"))
    var unindexedGrace = "1h"

    @Flag(help: "Accept an --unindexed-grace below 1h. Unsafe: only when no other process can be writing to the repository.")
    var unsafeShortGrace = false

    @Flag(help: "Prune even if the repository lists no snapshot while its index names packs (deletes them all).")
    var allowEmpty = false

    func options() throws -> PruneOptions {
        var options = PruneOptions()
        options.maxUnused = try UnusedLimit(parsing: maxUnused)
        if let maxRepackSize {
            guard let bytes = parseByteSize(maxRepackSize) else {
                throw BunkerError(.invalidArgument, "--max-repack-size \"\(maxRepackSize)\" is not a size; write e.g. 500M or 2G.")
            }
            options.maxRepackBytes = bytes
        }
        options.unindexedGrace = try seconds(unindexedGrace, option: "--unindexed-grace")
        options.allowShortGrace = unsafeShortGrace
        options.allowEmpty = allowEmpty
        try options.validate()
        return options
    }
}

/// Printing what forget and prune did, shared by `forget`, `prune` and `cleanup`.
enum RetentionOutput {
    static func print(_ report: ForgetReport) {
        Swift.print("Policy: \(report.policy)")
        var groups: [String: [RetentionDecision]] = [:]
        for decision in report.decisions { groups[decision.group, default: []].append(decision) }
        for (group, decisions) in groups.sorted(by: { $0.key < $1.key }) {
            Swift.print("\n\(group)")
            for d in decisions.sorted(by: { ($0.time, $0.id.hex) > ($1.time, $1.id.hex) }) {
                let verdict = d.keep ? "keep  " : "remove"
                Swift.print("  \(verdict)  \(d.id.short)  \(Output.localTime(d.time))  \(d.reasons.joined(separator: "; "))")
            }
        }
        let removed = report.dryRun ? "would be removed (dry run: nothing removed)" : "removed"
        // A snapshot the policy lets go of but the object lock keeps is not removed.
        let count = report.dryRun ? report.removeCount : report.removed.count
        let held = report.keptByLock.isEmpty ? "" : ", \(report.keptByLock.count) kept by the object lock"
        Swift.print("\n\(report.keptCount) snapshot\(report.keptCount == 1 ? "" : "s") kept, \(count) \(removed)\(held)")
        for locked in report.keptByLock {
            Swift.print("  \(locked.id.short) is kept by the object lock until \(locked.until.formatted(.iso8601)); a forget after that removes it")
        }
    }

    static func print(_ report: PruneReport) {
        Swift.print("Snapshots: \(report.snapshots); packs: \(report.packs); in use \(Output.bytes(report.usedBytes)) in \(report.blobsUsed) blobs, unused \(Output.bytes(report.unusedBytes)) in \(report.blobsUnused) blobs")
        let packs = { (n: Int) in "\(n) pack\(n == 1 ? "" : "s")" }
        if report.dryRun {
            Swift.print("Would delete \(packs(report.packsDeleted)) no snapshot uses, repack \(packs(report.packsRepacked)), and delete \(packs(report.unindexedPacksDeleted)) no index names")
        } else {
            Swift.print("Deleted \(packs(report.packsDeleted)) no snapshot used, repacked \(packs(report.packsRepacked)) into \(report.packsWritten) new, deleted \(packs(report.unindexedPacksDeleted)) no index named")
        }
        if report.unindexedPacksKept > 0 {
            Swift.print("Kept \(report.unindexedPacksKept) unindexed pack\(report.unindexedPacksKept == 1 ? "" : "s") younger than the grace period (a later prune removes them)")
        }
        if report.dryRun {
            Swift.print("Would free about \(Output.bytes(UInt64(max(0, report.bytesFreed)))); unused data left: \(Output.bytes(report.unusedBytesRemaining)) (dry run: nothing changed)")
        } else {
            if !report.packsNotDeleted.isEmpty {
                let n = report.packsNotDeleted.count
                FileHandle.standardError.write(Data("Warning: the storage accepted the deletion of \(n) pack\(n == 1 ? "" : "s") (\(Output.bytes(report.bytesNotFreed))) but \(n == 1 ? "it is" : "they are") still there (data/\(report.packsNotDeleted[0]) among them); not counted as freed. Check that the storage really deletes objects; the next prune tries again.\n".utf8))
            }
            Swift.print("Freed \(Output.bytes(UInt64(max(0, report.bytesFreed)))); unused data left: \(Output.bytes(report.unusedBytesRemaining)); \(report.indexFilesReplaced) index file\(report.indexFilesReplaced == 1 ? "" : "s") replaced")
        }
        if report.walFilesRemoved > 0 {
            Swift.print("\(report.dryRun ? "Would remove" : "Removed") \(report.walFilesRemoved) archived WAL file\(report.walFilesRemoved == 1 ? "" : "s") older than every kept base backup (or the pitr_days window)")
        }
        if report.objectsKeptByLock > 0, let until = report.keptByLockUntil {
            Swift.print("Kept by the object lock until \(until.formatted(.iso8601)): \(report.objectsKeptByLock) object\(report.objectsKeptByLock == 1 ? "" : "s") prune no longer needs (\(Output.bytes(report.bytesKeptByLock)), not counted as freed; a prune after that date deletes them)")
        }
        if report.locksExtended > 0 {
            Swift.print("Extended the object lock of \(report.locksExtended) object\(report.locksExtended == 1 ? "" : "s") still in use")
        }
    }
}
