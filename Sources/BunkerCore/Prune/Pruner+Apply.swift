import Foundation

/// Step 4 of the algorithm in ``Pruner``: carry out a plan.
extension Pruner {
    /// Does what `plan` says, under the exclusive lock, and reports what was done.
    ///
    /// Safety, which holds whatever the plan: only packs the plan found unused (by the index
    /// files and snapshots it read under this same lock) or unindexed past the grace period are
    /// deleted, and before anything is deleted the new index is checked to name a home for every
    /// blob in use. The order on storage, each step durable before the next:
    /// 1. new packs holding the used blobs of the packs to repack;
    /// 2. one new index file naming every kept and new pack and superseding every index file read;
    /// 3. deletion of the superseded index files;
    /// 4. deletion of the dropped packs (on an object-locked repository, only those whose lock
    ///    has ended; see `Pruner+Lock.swift`), then the locks of what stays are extended;
    /// 5. deletion of `.tmp-*` leftovers of writers that died.
    ///
    /// Killed at any point, the repository stays whole: until the new index exists, the old ones
    /// still name every pack and nothing was deleted; once it exists, it names every pack a
    /// snapshot needs. Leftovers (new packs no index names, old packs still indexed) are found
    /// by the next prune. On success the repository's in-memory index is read again.
    func apply(_ plan: PrunePlan) async throws -> PruneReport {
        var report = plan.report

        let written = try await copyUsedBlobs(of: plan.repack, packBlobs: plan.packBlobs, home: plan.home)
        report.packsWritten = written.count
        report.bytesWritten = written.reduce(0) { $0 + UInt64(PackFormat.packSize($1.blobs)) }
        report.bytesFreed = Int64(report.bytesDeleted) - Int64(report.bytesWritten)

        if plan.changesIndex {
            let packs = plan.keptPacks + written
            var indexed: Set<ID> = []
            for pack in packs { for blob in pack.blobs { indexed.insert(blob.id) } }
            guard plan.used.isSubset(of: indexed) else {
                throw BunkerError(.integrity, "Prune stopped before deleting anything: its new index would miss blobs in use (a bug). The repository is unchanged apart from new packs; please report this.")
            }
            try await repository.saveSealed(.index, IndexFile(supersedes: plan.indexFiles.sorted(), packs: packs).encoded())
            FaultPoints.hit("prune-after-index")

            for id in plan.indexFiles.sorted() {
                let handle = ObjectHandle(.index, id)
                if let until = try await lockedUntil(handle) {
                    keptByLock(0, until: until, &report)
                } else {
                    try await deleteSupersededIndexFile(id)
                    report.indexFilesReplaced += 1
                }
                FaultPoints.hit("prune-after-index-delete")
            }
        }

        for pack in plan.packsToDelete {
            let handle = ObjectHandle(.pack, pack)
            if let until = try await lockedUntil(handle) {
                var size = plan.packBlobs[pack].map { UInt64(PackFormat.packSize($0)) }
                if size == nil { size = (try? await repository.storage.stat(handle)).map { UInt64($0.size) } }
                keptByLock(size ?? 0, until: until, &report)
            } else if try await !deleteConfirmed(handle) {
                report.recordNotDeleted(pack, in: plan)
            }
            FaultPoints.hit("prune-after-pack-delete")
        }
        report.bytesFreed = Int64(report.bytesDeleted) - Int64(report.bytesWritten)
        report.locksExtended = try await extendLocks(
            keptPacks: plan.keptPacks.map(\.id), superseded: plan.changesIndex ? Set(plan.indexFiles) : Set<ID>())

        // Safe: nobody else writes under the exclusive lock.
        if let cleaning = repository.storage.capability((any TemporaryFileCleaning).self) {
            report.temporaryFilesRemoved = try cleaning.removeTemporaryFiles()
        }

        repository.index.removeAll()
        try await repository.loadIndex()
        return report
    }

    /// Copies the used blobs of `packs` into new packs, after checking each one authenticates and
    /// matches its id: sealed bytes as they are, except bundles holding members no snapshot uses,
    /// which are made again from the used members. Returns the packs written.
    private func copyUsedBlobs(of packs: [ID], packBlobs: [ID: [PackedBlob]], home: [ID: ID]) async throws -> [(id: ID, blobs: [PackedBlob])] {
        guard !packs.isEmpty else { return [] }
        progress?.update {
            $0 = OperationProgress.Counters()
            $0.filesTotal = packs.count
            $0.bytesTotal = packs.reduce(0) { $0 + UInt64(PackFormat.packSize(packBlobs[$1] ?? [])) }
            $0.totalsKnown = true
        }
        let collected = WrittenPacks()
        let packer = Packer(storage: repository.storage, key: repository.key, targetSize: repository.config.packSize) { id, blobs, _ in
            await collected.append(id, blobs)
            FaultPoints.hit("prune-after-pack")
        }
        let decompressor = ZstdDecompressor()
        let compressor = ZstdCompressor(level: repository.config.compressionLevel)
        for pack in packs.sorted() {
            let data: Data
            do {
                data = try await repository.storage.load(ObjectHandle(.pack, pack))
            } catch let error as BunkerError {
                throw refuse("pack data/\(pack.hex), which holds data in use, cannot be read", cause: error)
            }
            var entries: [Packer.Entry] = []
            for unit in PackFormat.units(packBlobs[pack] ?? []) {
                let keep = unit.filter { home[$0.id] == pack }
                guard let first = keep.first else { continue }
                let start = data.startIndex + Int(first.offset)
                guard Int(first.offset) + Int(first.length) <= data.count else {
                    throw refuse("pack data/\(pack.hex) is shorter than its index says")
                }
                let sealed = data[start..<(start + Int(first.length))]
                let plaintext: Data
                var members: [Data] = []
                do {
                    plaintext = try repository.openUnit(sealed, first, pack: pack, decompressor: decompressor)
                    for blob in keep { members.append(try repository.extractBlob(blob, from: plaintext, pack: pack)) }
                } catch let error as BunkerError {
                    throw refuse("blob \(first.id.short) in pack data/\(pack.hex) is damaged", cause: error)
                }
                if first.member == nil {
                    entries.append(Packer.Entry(type: first.type, id: first.id, sealed: Data(sealed), rawLength: Int(first.rawLength)))
                } else if keep.count == unit.count {
                    // A bundle still wholly in use is copied as it is.
                    entries.append(Packer.Entry(bundle: keep.map { ($0.id, Int($0.member!.length)) }, sealed: Data(sealed), rawLength: Int(first.rawLength)))
                } else {
                    // Members no snapshot uses are left out: the bundle is made again from the rest.
                    var joined = Data(capacity: members.reduce(0) { $0 + $1.count })
                    for member in members { joined.append(member) }
                    let compressed = compressor.compress(joined)
                    let resealed = try repository.key.seal(compressed ?? joined)
                    entries.append(Packer.Entry(bundle: zip(keep, members).map { ($0.id, $1.count) }, sealed: resealed, rawLength: compressed == nil ? 0 : joined.count))
                }
            }
            try await packer.add(entries)
            progress?.update {
                $0.filesDone += 1
                $0.bytesDone += UInt64(data.count)
                $0.currentPath = "pack \(pack.short)"
            }
        }
        try await packer.flush()
        return await collected.packs
    }
}

/// The packs a repack has written, in order.
private actor WrittenPacks {
    var packs: [(id: ID, blobs: [PackedBlob])] = []
    func append(_ id: ID, _ blobs: [PackedBlob]) { packs.append((id, blobs)) }
}
