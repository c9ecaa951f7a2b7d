import BunkerCore
import Foundation

/// The events of Bunker's operations, with the facts and advice each message carries.
extension NotificationEvent {
    static func size(_ bytes: UInt64) -> String {
        ByteCount.text(bytes)
    }

    static func backupSucceeded(_ result: BackupResult, request: SourceBackupRequest?, now: Date) -> NotificationEvent {
        let snapshot = result.snapshot
        let names = snapshot.sources?.map(\.name) ?? snapshot.paths
        var facts: [Fact] = [
            .init("Snapshot", result.snapshotID.hex),
            .init("Backup type", request?.type.rawValue ?? "paths"),
            .init("Sources", names.joined(separator: ", ")),
            .init("Size", size(snapshot.summary?.totalBytes ?? 0)),
            .init("Added to the repository", size(snapshot.summary?.dataAddedStored ?? 0) + " stored"),
            .init("Snapshot tree (content address; not the ZIP checksum)", snapshot.tree.hex),
            .init("Duration", String(format: "%.1f s", snapshot.summary?.durationSeconds ?? 0)),
        ]
        if let description = snapshot.description { facts.append(.init("Description", description)) }
        var actions: [String] = []
        if !result.warnings.isEmpty {
            facts.append(.init("Warnings", "\(result.warnings.count) files could not be read: \(result.warnings.prefix(3).joined(separator: "; "))"))
            actions.append("Check why those files could not be read (permissions, files removed while reading) and run the backup again.")
        }
        return NotificationEvent(kind: .backupSucceeded, time: now, title: "Backup of \(names.joined(separator: ", ")) succeeded", facts: facts, actions: actions)
    }

    static func backupFailed(_ error: any Error, sources: [String], request: SourceBackupRequest?, now: Date) -> NotificationEvent {
        let message = (error as? BunkerError)?.message ?? "\(error)"
        var actions = [
            "Read the error above: it names the step and the source that failed.",
            "Run `bunker backup` again once the cause is fixed; no half-written snapshot was kept.",
            "Run `bunker verify` to confirm that the earlier backups are intact.",
        ]
        switch (error as? BunkerError)?.code {
        case .storageFull?: actions.insert("Free space on the repository's storage (`bunker cleanup` removes what the retention policy no longer keeps).", at: 0)
        case .repositoryLocked?: actions.insert("Another backup, restore or prune holds the repository; wait for it, or retry with --retry-lock.", at: 0)
        case .sourceIO?: actions.insert("Check that the database server is up and reachable with the configured user, and that the source's folder exists (its volume mounted) and is readable.", at: 0)
        default: break
        }
        return NotificationEvent(
            kind: .backupFailed, time: now, title: "Backup of \(sources.joined(separator: ", ")) failed",
            facts: [.init("Error", message), .init("Backup type", request?.type.rawValue ?? "paths"), .init("Sources", sources.joined(separator: ", "))],
            actions: actions)
    }

    static func restoreSucceeded(_ outcome: RestoreOutcome, reason: String?, now: Date) -> NotificationEvent {
        var facts: [Fact] = [
            .init("Snapshot restored", outcome.snapshotID),
            .init("Sources", outcome.sources.map { "\($0.source) → \($0.destination)" }.joined(separator: "; ")),
            .init("Checks passed", Array(Set(outcome.sources.flatMap(\.checks))).sorted().joined(separator: ", ")),
            .init("Safety snapshot", outcome.safetySnapshotID ?? "none (no live data, or --no-safety-backup)"),
        ]
        if let reason { facts.append(.init("Reason", reason)) }
        var checklist = [
            "Start the application and confirm it opens the restored data.",
            "Spot-check the most recent records you expect to see (and those you expect not to).",
            "Tell the users which point in time the data now reflects.",
        ]
        if let safety = outcome.safetySnapshotID {
            checklist.append("Keep safety snapshot \(safety.prefix(8)) until the restore is confirmed: `bunker restore \(safety.prefix(8))` undoes it.")
        }
        checklist.append("Run `bunker backup` so that the restored state has a fresh backup.")
        return NotificationEvent(kind: .restoreSucceeded, time: now, title: "Restore of snapshot \(outcome.snapshotID.prefix(8)) succeeded", facts: facts, actions: checklist)
    }

    static func restoreFailed(_ error: any Error, request: SourceRestoreRequest, now: Date) -> NotificationEvent {
        let message = (error as? BunkerError)?.message ?? "\(error)"
        var facts: [Fact] = [.init("Snapshot", request.snapshot), .init("Error", message)]
        let safety = (error as? BunkerError)?.safetySnapshotID
        facts.append(.init("Safety snapshot", safety ?? "none taken"))
        var options = [
            "The source that failed is as it was before the restore; the error above says which step failed.",
        ]
        if let safety {
            options.append("Safety snapshot \(safety.prefix(8)) holds the live data as it was just before the attempt: `bunker restore \(safety.prefix(8))` puts it back.")
        }
        options += [
            "Run `bunker drill \(request.snapshot.prefix(8))` to test the snapshot without touching live data.",
            "Try an earlier snapshot (`bunker snapshots`), or restore elsewhere with --target / --to to inspect it.",
            "Run `bunker verify --read-data` to find damaged data in the repository.",
        ]
        return NotificationEvent(kind: .restoreFailed, time: now, title: "Restore of snapshot \(request.snapshot.prefix(8)) FAILED", facts: facts, actions: options)
    }

    static func verifyFailed(_ report: CheckReport?, error: (any Error)?, scope: String = "the repository", now: Date) -> NotificationEvent {
        var facts: [Fact] = []
        if let report {
            facts.append(.init("Errors", String(report.errors.count)))
            for issue in report.errors.prefix(5) { facts.append(.init("Damaged", "\(issue.object): \(issue.message)")) }
        }
        if let error { facts.append(.init("Error", (error as? BunkerError)?.message ?? "\(error)")) }
        return NotificationEvent(
            kind: .verifyFailed, time: now, title: "Verification of \(scope) found problems", facts: facts,
            actions: [
                "Run `bunker verify --read-data` for the full list; it names the snapshots and files each damaged object affects.",
                "Take a new backup now (`bunker backup`): data still present on the sources is stored again.",
                "Check the storage (disk errors, a full disk, a sync tool that changed files).",
            ])
    }

    static func verifySucceeded(_ report: CheckReport, scope: String, now: Date) -> NotificationEvent {
        NotificationEvent(
            kind: .verifySucceeded, time: now, title: "Verification of \(scope) found no problems",
            facts: [.init("Snapshots", String(report.snapshots)), .init("Packs read", String(report.packsRead))])
    }

    static func drillSucceeded(_ report: DrillReport, now: Date) -> NotificationEvent {
        var facts: [Fact] = [.init("Snapshot", report.snapshotID), .init("RTO", String(format: "%.1f s", report.durationSeconds))]
        if let path = report.reportPath { facts.append(.init("Report", path)) }
        return NotificationEvent(kind: .drillSucceeded, time: now, title: "Restore drill passed", facts: facts)
    }

    static func copySucceeded(to destination: String, now: Date) -> NotificationEvent {
        NotificationEvent(kind: .copySucceeded, time: now, title: "Copy of the backups to \(destination) succeeded", facts: [.init("Destination", destination)])
    }

    static func walArchiveFailed(source: String, file: String, error: BunkerError, now: Date) -> NotificationEvent {
        NotificationEvent(
            kind: .walArchiveFailed, time: now, title: "WAL archiving of \(source) REFUSED \(file)",
            facts: [.init("Source", source), .init("File", file), .init("Code", error.code.rawValue), .init("Error", error.message)],
            actions: [
                "PostgreSQL keeps the file and retries: until the cause is fixed, pg_wal grows and the point-in-time window stops at the file before it.",
                "If two servers archive into one source, give each its own source (--source) in their archive_command.",
                "Once fixed, take a new base backup so that the window is whole again.",
            ])
    }

    static func copyFailed(to destination: String, error: any Error, now: Date) -> NotificationEvent {
        NotificationEvent(
            kind: .copyFailed, time: now, title: "Copy of the backups to \(destination) failed",
            facts: [.init("Destination", destination), .init("Error", (error as? BunkerError)?.message ?? "\(error)")],
            actions: [
                "Read the error above: it says whether the destination could not be reached, was full, or refused the credentials.",
                "Run `bunker copy` again once the cause is fixed: it ships only what the destination still lacks.",
                "Until then the off-site copy is behind the local backups; `bunker snapshots --repo DESTINATION` shows what it holds.",
            ])
    }

    static func drillFailed(_ report: DrillReport?, error: (any Error)?, now: Date) -> NotificationEvent {
        var facts: [Fact] = []
        if let report {
            facts.append(.init("Snapshot", report.snapshotID))
            for source in report.sources where !source.passed {
                for check in source.checks where !check.passed { facts.append(.init("\(source.name): \(check.name)", check.detail)) }
            }
            if !report.dataCheck.passed { facts.append(.init("Stored data", report.dataCheck.detail)) }
            if let path = report.reportPath { facts.append(.init("Report", path)) }
        }
        if let error { facts.append(.init("Error", (error as? BunkerError)?.message ?? "\(error)")) }
        return NotificationEvent(
            kind: .drillFailed, time: now, title: "Restore drill FAILED", facts: facts,
            actions: [
                "Read the drill report: it names each check that failed.",
                "Run `bunker verify --read-data` to find damaged data.",
                "Take a new backup and drill it (`bunker backup && bunker drill`).",
            ])
    }
}
