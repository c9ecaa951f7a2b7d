import Foundation

/// Steps 1 to 3 of the algorithm in ``Pruner``: read, decide, report. Nothing here writes or
/// deletes, and the repository's own in-memory index is left alone (a dry run shares the process
/// with backups whose packs are not indexed yet).
extension Pruner {
    /// Decides what to delete, repack and keep; throws, before anything is changed, whenever
    /// what was read cannot be trusted to tell used data from unused.
    func plan() async throws -> PrunePlan {
        // 1. Index files and used blobs. The walk finds trees in a pack map built from the files
        // read under the lock, so that it sees exactly what this prune will supersede.
        let (indexFiles, packBlobs, packMap) = try await readIndexFiles()
        var report = PruneReport()
        report.dryRun = options.dryRun
        report.packs = packBlobs.count
        let used = try await usedBlobs(&report, packMap: packMap)
        if report.snapshots == 0 && !packBlobs.isEmpty && !options.allowEmpty {
            throw BunkerError(.integrity, "Prune stopped before changing anything: the repository lists no snapshot, yet its index names \(packBlobs.count) pack\(packBlobs.count == 1 ? "" : "s"), and pruning would delete them all. If the snapshots were removed on purpose, run prune again with --allow-empty; otherwise check the repository's snapshots/ directory (or bucket listing) and run `bunker verify`.")
        }
        var stored: [ID: ObjectInfo] = [:]
        for info in try await repository.storage.list(.pack) {
            if let id = ID(hex: info.handle.name) { stored[id] = info }
        }
        try await checkListingNamesEveryIndexedPack(stored, packBlobs: packBlobs)
        let home = try homes(of: used, packBlobs: packBlobs)
        var plan = PrunePlan(indexFiles: indexFiles, packBlobs: packBlobs, used: used, home: home, report: report)

        // 2. Indexed packs: wholly used (kept), wholly unused (deleted), partly used (repacked,
        // emptiest first, while too much unused data is left).
        let partial = classifyPacks(&plan)
        chooseRepacks(from: partial, &plan)

        // 3. Packs no index names.
        let now = repository.now()
        for (id, info) in stored where packBlobs[id] == nil {
            if let modified = info.modified, now.timeIntervalSince(modified) > options.unindexedGrace {
                plan.deleteUnindexed.append(id)
                plan.unindexedSizes[id] = UInt64(info.size)
                plan.report.bytesDeleted += UInt64(info.size)
            } else {
                plan.report.unindexedPacksKept += 1
            }
        }
        plan.report.unindexedPacksDeleted = plan.deleteUnindexed.count
        plan.report.bytesFreed = Int64(plan.report.bytesDeleted) - Int64(plan.report.bytesRepacked)
        return plan
    }

    /// Reads every index file: the ids read, each indexed pack's blobs (as the first file naming
    /// it lists them), and a pack map of them all. A damaged index file stops prune: it could
    /// not tell what is used.
    ///
    /// A file that another file read here supersedes is left over from an earlier prune whose
    /// deletion of it did not happen (or was not carried out by the server): the superseding file
    /// names every pack in use, so the leftover's packs count for nothing (some were deleted),
    /// and it is superseded again by this prune's index.
    private func readIndexFiles() async throws -> (files: [ID], packBlobs: [ID: [PackedBlob]], packMap: MasterIndex) {
        var indexFiles: [ID] = []
        var decoded: [(id: ID, file: IndexFile)] = []
        var packBlobs: [ID: [PackedBlob]] = [:]
        let packMap = MasterIndex()
        // A listing may miss objects: index files this process read before are asked for by name.
        let listed = Set(try await repository.storage.list(.index).compactMap { ID(hex: $0.handle.name) })
        let known = Set(repository.index.indexFileIDs).subtracting(listed)
        for id in listed.union(known).sorted() {
            let file: IndexFile
            do {
                file = try IndexFile(decoding: try await repository.loadSealed(.index, id), name: id)
            } catch let error as BunkerError where error.code == .objectNotFound && known.contains(id) {
                continue
            } catch let error as BunkerError where error.code == .corruptObject || error.code == .unsupportedFormat {
                throw refuse("index file index/\(id.hex) is damaged", cause: error)
            }
            indexFiles.append(id)
            decoded.append((id, file))
        }
        let superseded = Set(decoded.flatMap { $0.file.supersedes })
        for (id, file) in decoded where !superseded.contains(id) {
            packMap.add(file, name: id)
            for pack in file.packs where packBlobs[pack.id] == nil { packBlobs[pack.id] = pack.blobs }
        }
        return (indexFiles, packBlobs, packMap)
    }

    /// Every blob a snapshot uses: its trees and its files' chunks.
    ///
    /// Trees walked are remembered apart from the blobs in use: a file whose content is the
    /// same bytes as a directory listing has the same id, and must not stop that tree's walk.
    private func usedBlobs(_ report: inout PruneReport, packMap: MasterIndex) async throws -> Set<ID> {
        var used: Set<ID> = []
        var walked: Set<ID> = []
        for info in try await repository.storage.list(.snapshot) {
            guard let id = ID(hex: info.handle.name), !options.forgotten.contains(id) else { continue }
            let snapshot: Snapshot
            do {
                snapshot = try await repository.loadSnapshot(id)
            } catch let error as BunkerError where error.code == .corruptObject {
                throw refuse("snapshot \(id.short) is damaged", cause: error)
            }
            report.snapshots += 1
            progress?.update {
                $0.filesDone += 1
                $0.currentPath = "snapshot \(id.short)"
            }
            try await repository.walkListings(from: [snapshot.tree], in: packMap) { treeID in
                guard walked.insert(treeID).inserted else { return nil }
                used.insert(treeID)
                return treeID
            } visit: { treeID, loaded in
                let tree: Tree
                do {
                    tree = try loaded.get()
                } catch let error as BunkerError {
                    throw refuse("directory listing \(treeID.short) of snapshot \(id.short) cannot be read", cause: error)
                }
                var under: [ID] = []
                for node in tree.nodes {
                    if let sub = node.subtree { under.append(sub) }
                    for blob in node.content ?? [] { used.insert(blob) }
                }
                return under
            }
        }
        return used
    }

    /// Each used blob's home: its first copy in an indexed pack (every one exists: the listing
    /// was checked to name them all). A used blob in no index stops prune.
    private func homes(of used: Set<ID>, packBlobs: [ID: [PackedBlob]]) throws -> [ID: ID] {
        var home: [ID: ID] = [:]
        for (pack, blobs) in packBlobs.sorted(by: { $0.key < $1.key }) {
            for blob in blobs where used.contains(blob.id) && home[blob.id] == nil { home[blob.id] = pack }
        }
        if let missing = used.first(where: { home[$0] == nil }) {
            throw refuse("blob \(missing.short), which a snapshot uses, is in no index")
        }
        return home
    }

    /// Stops prune, before anything is deleted, unless the storage's listing of `data/` names
    /// every pack the index names.
    ///
    /// A listing that lacks indexed packs cannot be trusted to be whole (a page lost, a server
    /// that is only eventually consistent, a listing cut short and not saying so), and prune
    /// decides from it which packs no index names. So it trusts neither the listing nor the
    /// index alone: packs missing from the listing are asked for by name, to say whether the
    /// listing is incomplete (run again later) or the packs are gone (the repository is damaged).
    private func checkListingNamesEveryIndexedPack(_ stored: [ID: ObjectInfo], packBlobs: [ID: [PackedBlob]]) async throws {
        let unlisted = packBlobs.keys.filter { stored[$0] == nil }.sorted()
        guard !unlisted.isEmpty else { return }
        var present: [ID] = []
        var missing: [ID] = []
        for pack in unlisted.prefix(Self.packsAskedByName) {
            if try await repository.storage.exists(ObjectHandle(.pack, pack)) { present.append(pack) } else { missing.append(pack) }
        }
        let count = "\(unlisted.count) pack\(unlisted.count == 1 ? "" : "s")"
        if missing.isEmpty {
            throw BunkerError(.storageIO, "Prune stopped before changing anything: the storage's listing of data/ lacks \(count) that the index names (data/\(present[0].hex) among them), yet they are there when asked for by name. The listing is incomplete (cut short, or not yet consistent), and prune deletes nothing on the strength of such a listing. Run prune again later; if it keeps failing, run `bunker verify` and check the storage.")
        }
        throw refuse("\(count) that the index names \(unlisted.count == 1 ? "is" : "are") neither listed nor found (data/\(missing[0].hex) among them)")
    }

    /// How many unlisted packs are asked for by name before prune says why it stops.
    private static let packsAskedByName = 16

    /// A partly used pack: its size, and the stored bytes of its used and unused blobs.
    private struct RepackCandidate { var pack: ID; var size: UInt64; var used: UInt64; var unused: UInt64 }

    /// Counts used and unused blobs per indexed pack, plans the deletion of the wholly unused
    /// ones, and returns the partly used ones.
    private func classifyPacks(_ plan: inout PrunePlan) -> [RepackCandidate] {
        var partial: [RepackCandidate] = []
        for (pack, blobs) in plan.packBlobs {
            var usedBytes: UInt64 = 0
            var unusedBytes: UInt64 = 0
            var usedCount = 0
            var unusedCount = 0
            // Counted per blob, not per byte: a bundle member's share of the bundle's bytes can
            // round to 0, and a pack with a used blob must never look unused.
            for blob in blobs {
                if plan.home[blob.id] == pack {
                    usedBytes += UInt64(blob.storedShare)
                    usedCount += 1
                } else {
                    unusedBytes += UInt64(blob.storedShare)
                    unusedCount += 1
                }
            }
            plan.report.blobsUsed += usedCount
            plan.report.blobsUnused += unusedCount
            plan.report.usedBytes += usedBytes
            plan.report.unusedBytes += unusedBytes
            let size = UInt64(PackFormat.packSize(blobs))
            if usedCount == 0 {
                plan.deleteIndexed.append(pack)
                plan.report.bytesDeleted += size
            } else if unusedCount > 0 {
                partial.append(RepackCandidate(pack: pack, size: size, used: usedBytes, unused: unusedBytes))
            }
        }
        plan.report.packsDeleted = plan.deleteIndexed.count
        return partial
    }

    /// Picks partly used packs to repack, emptiest first, until the unused bytes left are within
    /// `max_unused`, skipping any that would take the bytes rewritten past `max_repack_size`.
    private func chooseRepacks(from partial: [RepackCandidate], _ plan: inout PrunePlan) {
        var remaining = partial.reduce(0) { $0 + $1.unused }
        let tolerated = options.maxUnused.tolerated(used: plan.report.usedBytes)
        var repackBytes: UInt64 = 0
        for candidate in partial.sorted(by: { (Double($0.unused) / Double($0.size), $0.pack.hex) > (Double($1.unused) / Double($1.size), $1.pack.hex) }) {
            if remaining <= tolerated { break }
            if let limit = options.maxRepackBytes, repackBytes + candidate.size > limit { continue }
            plan.repack.append(candidate.pack)
            repackBytes += candidate.size
            remaining -= candidate.unused
            plan.report.bytesDeleted += candidate.size
            plan.report.bytesRepacked += candidate.used
        }
        plan.report.packsRepacked = plan.repack.count
        plan.report.unusedBytesRemaining = remaining
    }
}
