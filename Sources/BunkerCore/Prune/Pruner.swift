import Foundation

/// How much unused data prune may leave in packs that still hold used data.
public enum UnusedLimit: Sendable, Equatable, CustomStringConvertible {
    /// Unused bytes may be at most this share (0–99.x %) of the packs' bytes after prune.
    case percent(Double)
    /// At most this many unused bytes.
    case bytes(UInt64)
    /// Never repack for unused space; only wholly unused packs are deleted.
    case unlimited

    /// Parses `5%`, `200M`, `1G`, `unlimited`.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "unlimited" {
            self = .unlimited
        } else if t.hasSuffix("%"), let p = Double(t.dropLast()), p >= 0, p < 100 {
            self = .percent(p)
        } else if let bytes = parseByteSize(t) {
            self = .bytes(bytes)
        } else {
            throw BunkerError(.invalidArgument, "\"\(text)\" is not an unused-space limit; write a percentage below 100 (5%), a size (500M, 2G) or `unlimited`.")
        }
    }

    /// The unused bytes tolerated beside `used` bytes of used data.
    func tolerated(used: UInt64) -> UInt64 {
        switch self {
        case .percent(let p): return UInt64(Double(used) * p / (100 - p))
        case .bytes(let b): return b
        case .unlimited: return .max
        }
    }

    public var description: String {
        switch self {
        case .percent(let p): return p == p.rounded() ? "\(Int(p))%" : "\(p)%"
        case .bytes(let b): return "\(b) bytes"
        case .unlimited: return "unlimited"
        }
    }
}

/// Parses `123`, `10K`, `500M`, `2G`, `1T` (powers of 1024; an optional trailing `B` or `iB`).
public func parseByteSize(_ text: String) -> UInt64? {
    var t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if t.hasSuffix("ib") { t.removeLast(2) } else if t.hasSuffix("b") { t.removeLast() }
    let units: [Character: UInt64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40]
    var multiplier: UInt64 = 1
    if let last = t.last, let unit = units[last] {
        multiplier = unit
        t.removeLast()
    }
    guard let value = Double(t), value >= 0 else { return nil }
    return UInt64(value * Double(multiplier))
}

/// Prune's settings, like restic's.
public struct PruneOptions: Sendable {
    /// Unused data tolerated in packs that also hold used data; above it, the emptiest such
    /// packs are repacked.
    public var maxUnused: UnusedLimit = .percent(5)
    /// At most this many bytes of packs are read and rewritten in one run (nil: no limit).
    public var maxRepackBytes: UInt64?
    /// A pack that no index names is deleted only once it is older than this: a writer whose lock
    /// was wrongly taken for stale may still be about to index it. At least
    /// ``minimumUnindexedGrace`` unless ``allowShortGrace``.
    public var unindexedGrace: TimeInterval = 3600
    /// Accept an ``unindexedGrace`` below ``minimumUnindexedGrace`` (`--unsafe-short-grace`): only
    /// safe when no other process can be writing to the repository.
    public var allowShortGrace = false
    /// Prune even when no snapshot is left while the index still names packs (`--allow-empty`).
    /// Without it such a prune refuses: a listing that lost the snapshots would make it delete
    /// every pack.
    public var allowEmpty = false
    /// Decide and report, change nothing.
    public var dryRun = false
    /// Snapshots to count as already forgotten: a cleanup's dry run plans the prune that would
    /// follow its forget.
    public var forgotten: Set<ID> = []

    /// The shortest ``unindexedGrace`` accepted without ``allowShortGrace``: twice the time after
    /// which a lock is taken for stale, so that a writer whose lock was wrongly judged stale has
    /// long indexed its packs (or died) before they count as leftovers.
    public static let minimumUnindexedGrace: TimeInterval = max(3600, 2 * LockInfo.staleAfter)

    public init() {}

    /// Refuses settings that could delete data a live writer still needs.
    public func validate() throws {
        guard unindexedGrace >= PruneOptions.minimumUnindexedGrace || allowShortGrace else {
            throw BunkerError(.invalidArgument, "An unindexed grace of \(Int(unindexedGrace)) s is shorter than the minimum of \(Int(PruneOptions.minimumUnindexedGrace / 60)) minutes: prune could delete the packs of a backup that is still running. Give a longer --unindexed-grace, or add --unsafe-short-grace if no other process can be using the repository.")
        }
    }
}

/// What prune found and did.
public struct PruneReport: Sendable, Codable {
    public var dryRun = false
    public var snapshots = 0
    public var packs = 0
    public var blobsUsed = 0
    public var blobsUnused = 0
    /// Stored bytes of the blobs snapshots use, and of those they do not (duplicates included).
    public var usedBytes: UInt64 = 0
    public var unusedBytes: UInt64 = 0
    /// Packs no snapshot uses any blob of: deleted.
    public var packsDeleted = 0
    /// Packs whose used blobs were copied into new packs, then deleted.
    public var packsRepacked = 0
    public var packsWritten = 0
    /// Packs left by interrupted writers that no index names: deleted once past the grace period.
    public var unindexedPacksDeleted = 0
    /// Such packs kept because they are younger than the grace period (or their age is unknown).
    public var unindexedPacksKept = 0
    public var indexFilesReplaced = 0
    public var bytesDeleted: UInt64 = 0
    public var bytesWritten: UInt64 = 0
    /// Used blob bytes copied out of repacked packs (a dry run's estimate of what it would write).
    public var bytesRepacked: UInt64 = 0
    /// Unused bytes that stay in packs below the `max_unused` threshold.
    public var unusedBytesRemaining: UInt64 = 0
    public var temporaryFilesRemoved = 0

    /// Bytes of storage given back: deleted minus written (a dry run's estimate counts the used
    /// bytes it would copy as written).
    public var bytesFreed: Int64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case snapshots, packs
        case dryRun = "dry_run"
        case blobsUsed = "blobs_used"
        case blobsUnused = "blobs_unused"
        case usedBytes = "used_bytes"
        case unusedBytes = "unused_bytes"
        case packsDeleted = "packs_deleted"
        case packsRepacked = "packs_repacked"
        case packsWritten = "packs_written"
        case unindexedPacksDeleted = "unindexed_packs_deleted"
        case unindexedPacksKept = "unindexed_packs_kept"
        case indexFilesReplaced = "index_files_replaced"
        case bytesDeleted = "bytes_deleted"
        case bytesWritten = "bytes_written"
        case bytesRepacked = "bytes_repacked"
        case unusedBytesRemaining = "unused_bytes_remaining"
        case temporaryFilesRemoved = "temporary_files_removed"
        case bytesFreed = "bytes_freed"
    }
}

/// Removes data that no snapshot references.
///
/// ## Algorithm
/// Under the repository's exclusive lock:
/// 1. Read every index file (a damaged one stops prune: it cannot tell what is used) and walk
///    every snapshot's trees to collect the blobs in use (a damaged snapshot or a missing tree
///    stops prune too: its blobs would look unused). Each used blob gets one home, its first
///    copy in a pack that exists; other copies are duplicates and count as unused. A used blob
///    with no existing copy stops prune, and so does finding no snapshot at all while the index
///    names packs (unless `--allow-empty`): that is more often a listing that failed than an
///    empty repository.
/// 2. Sort the indexed packs: wholly used (kept), wholly unused (deleted), partly used. Partly
///    used packs are repacked, emptiest first, until the unused bytes left are within
///    `max_unused` (and at most `max_repack_size` bytes are rewritten).
/// 3. Packs in the storage listing that no index names (left by a writer that died) are deleted
///    when older than the grace period; a listing is never trusted further than that.
/// 4. Write, in this order, each step durable before the next:
///    new packs (used blobs of repacked packs, copied sealed and authenticated on the way) →
///    one new index file listing every kept and new pack and **superseding** every index file
///    read → deletion of the superseded index files → deletion of the dropped packs →
///    deletion of `.tmp-*` leftovers.
///
/// Killed at any point, the repository stays whole: until the new index exists, the old ones
/// still name every pack and nothing was deleted; once it exists, it names every pack a snapshot
/// needs, so deleting the old index files and then the dropped packs removes nothing in use.
/// The next prune sees leftovers as unused (still indexed) or unindexed packs and removes them.
public struct Pruner: Sendable {
    private let repository: Repository
    private let options: PruneOptions
    private let progress: OperationProgress?

    /// `progress` counts snapshots walked, then packs and bytes repacked.
    public init(repository: Repository, options: PruneOptions = PruneOptions(), progress: OperationProgress? = nil) {
        self.repository = repository
        self.options = options
        self.progress = progress
    }

    /// Prunes under the exclusive lock; pass `lockHeld` only from inside
    /// ``Repository/withLock(exclusive:_:)`` with `exclusive`.
    /// A dry run takes a shared lock: it only reads.
    public func run(lockHeld: Bool = false) async throws -> PruneReport {
        try options.validate()
        if lockHeld { return try await pruneKeepingIndex() }
        return try await repository.withLock(exclusive: !options.dryRun) { try await self.pruneKeepingIndex() }
    }

    /// Prunes; if a real prune stops half-way, the in-memory index is read again in full, so that
    /// a long-lived process (the server) goes on with a complete index. A dry run never touches
    /// the repository's in-memory index: it runs under a shared lock, beside backups of the same
    /// process whose packs are not indexed yet.
    private func pruneKeepingIndex() async throws -> PruneReport {
        do {
            return try await prune()
        } catch {
            if !options.dryRun {
                repository.index.removeAll()
                try? await repository.loadIndex()
            }
            throw error
        }
    }

    private func refuse(_ what: String, cause: (any Error & Sendable)? = nil) -> BunkerError {
        BunkerError(.corruptObject, "Prune stopped before changing anything: \(what). Run `bunker verify` to see what is damaged; prune only runs on a repository whose snapshots can all be read.", cause: cause)
    }

    private func prune() async throws -> PruneReport {
        var report = PruneReport()
        report.dryRun = options.dryRun
        let storage = repository.storage

        // 1. Index files and used blobs. The walk below finds trees in a pack map built here from
        // the files read under the lock, so that it sees exactly what this prune will supersede;
        // the repository's own index is left alone (a dry run shares the process with backups).
        var indexFiles: [ID] = []
        var packBlobs: [ID: [PackedBlob]] = [:]
        let packMap = MasterIndex()
        // A listing may miss objects: index files this process read before are asked for by name.
        let listed = Set(try await storage.list(.index).compactMap { ID(hex: $0.handle.name) })
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
            packMap.add(file, name: id)
            for pack in file.packs where packBlobs[pack.id] == nil { packBlobs[pack.id] = pack.blobs }
        }
        report.packs = packBlobs.count
        let used = try await usedBlobs(&report, packMap: packMap)
        if report.snapshots == 0 && !packBlobs.isEmpty && !options.allowEmpty {
            throw BunkerError(.integrity, "Prune stopped before changing anything: the repository lists no snapshot, yet its index names \(packBlobs.count) pack\(packBlobs.count == 1 ? "" : "s"), and pruning would delete them all. If the snapshots were removed on purpose, run prune again with --allow-empty; otherwise check the repository's snapshots/ directory (or bucket listing) and run `bunker verify`.")
        }

        // Each used blob's home is its first copy in a pack that exists: a copy in a missing
        // pack must not make prune delete the pack holding the only other copy.
        var stored: [ID: ObjectInfo] = [:]
        for info in try await storage.list(.pack) {
            if let id = ID(hex: info.handle.name) { stored[id] = info }
        }
        var home: [ID: ID] = [:]
        var unlisted: [ID] = []
        for (pack, blobs) in packBlobs.sorted(by: { $0.key < $1.key }) {
            guard stored[pack] != nil else {
                unlisted.append(pack)
                continue
            }
            for blob in blobs where used.contains(blob.id) && home[blob.id] == nil { home[blob.id] = pack }
        }
        for pack in unlisted where packBlobs[pack]!.contains(where: { used.contains($0.id) && home[$0.id] == nil }) {
            // The listing may be incomplete: ask by name before calling the pack missing.
            guard (try? await storage.stat(ObjectHandle(.pack, pack))) != nil else {
                throw refuse("pack data/\(pack.hex), which holds data in use, is missing")
            }
            for blob in packBlobs[pack]! where used.contains(blob.id) && home[blob.id] == nil { home[blob.id] = pack }
        }
        if let missing = used.first(where: { home[$0] == nil }) {
            throw refuse("blob \(missing.short), which a snapshot uses, is in no index")
        }

        // 2. Classify packs.
        struct Candidate { var pack: ID; var size: UInt64; var used: UInt64; var unused: UInt64 }
        var deleteIndexed: [ID] = []
        var partial: [Candidate] = []
        var totalUsed: UInt64 = 0
        for (pack, blobs) in packBlobs {
            var usedBytes: UInt64 = 0
            var unusedBytes: UInt64 = 0
            var usedCount = 0
            var unusedCount = 0
            // Counted per blob, not per byte: a bundle member's share of the bundle's bytes can
            // round to 0, and a pack with a used blob must never look unused.
            for blob in blobs {
                if home[blob.id] == pack {
                    usedBytes += UInt64(blob.storedShare)
                    usedCount += 1
                } else {
                    unusedBytes += UInt64(blob.storedShare)
                    unusedCount += 1
                }
            }
            report.blobsUsed += usedCount
            report.blobsUnused += unusedCount
            totalUsed += usedBytes
            report.unusedBytes += unusedBytes
            let size = UInt64(Self.packSize(blobs))
            if usedCount == 0 {
                deleteIndexed.append(pack)
                report.bytesDeleted += size
            } else if unusedCount > 0 {
                partial.append(Candidate(pack: pack, size: size, used: usedBytes, unused: unusedBytes))
            }
        }
        report.usedBytes = totalUsed
        report.packsDeleted = deleteIndexed.count

        var remaining = partial.reduce(0) { $0 + $1.unused }
        let tolerated = options.maxUnused.tolerated(used: totalUsed)
        var repack: [ID] = []
        var repackBytes: UInt64 = 0
        for candidate in partial.sorted(by: { (Double($0.unused) / Double($0.size), $0.pack.hex) > (Double($1.unused) / Double($1.size), $1.pack.hex) }) {
            if remaining <= tolerated { break }
            if let limit = options.maxRepackBytes, repackBytes + candidate.size > limit { continue }
            repack.append(candidate.pack)
            repackBytes += candidate.size
            remaining -= candidate.unused
            report.bytesDeleted += candidate.size
            report.bytesRepacked += candidate.used
        }
        report.packsRepacked = repack.count
        report.unusedBytesRemaining = remaining

        // 3. Packs no index names.
        var deleteUnindexed: [ID] = []
        let now = repository.now()
        for (id, info) in stored where packBlobs[id] == nil {
            if let modified = info.modified, now.timeIntervalSince(modified) > options.unindexedGrace {
                deleteUnindexed.append(id)
                report.bytesDeleted += UInt64(info.size)
            } else {
                report.unindexedPacksKept += 1
            }
        }
        report.unindexedPacksDeleted = deleteUnindexed.count

        let changesIndex = !deleteIndexed.isEmpty || !repack.isEmpty || indexFiles.count > 1
        guard !options.dryRun else {
            report.bytesFreed = Int64(report.bytesDeleted) - Int64(report.bytesRepacked)
            return report
        }

        // 4a. New packs.
        let written = try await copyUsedBlobs(of: repack, packBlobs: packBlobs, home: home)
        report.packsWritten = written.count
        report.bytesWritten = written.reduce(0) { $0 + UInt64(Self.packSize($1.blobs)) }
        report.bytesFreed = Int64(report.bytesDeleted) - Int64(report.bytesWritten)

        // 4b. The new index, superseding every index file read.
        if changesIndex {
            let dropped = Set(deleteIndexed).union(repack)
            var kept = packBlobs.filter { !dropped.contains($0.key) }.sorted { $0.key < $1.key }.map { (id: $0.key, blobs: $0.value) }
            kept += written
            var indexed: Set<ID> = []
            for pack in kept { for blob in pack.blobs { indexed.insert(blob.id) } }
            guard used.isSubset(of: indexed) else {
                throw BunkerError(.integrity, "Prune stopped before deleting anything: its new index would miss blobs in use (a bug). The repository is unchanged apart from new packs; please report this.")
            }
            try await repository.saveSealed(.index, IndexFile(supersedes: indexFiles.sorted(), packs: kept).encoded())
            FaultPoints.hit("prune-after-index")

            // 4c. The superseded index files.
            for id in indexFiles.sorted() {
                try await removeIfPresent(ObjectHandle(.index, id))
                report.indexFilesReplaced += 1
                FaultPoints.hit("prune-after-index-delete")
            }
        }

        // 4d. The dropped packs: only ones the index named as unused, or unindexed past grace.
        for pack in (deleteIndexed + repack).sorted() + deleteUnindexed.sorted() {
            try await removeIfPresent(ObjectHandle(.pack, pack))
            FaultPoints.hit("prune-after-pack-delete")
        }

        // 4e. Temporary files of writers that died (safe: nobody else writes under our lock).
        if let cleaning = storage.capability((any TemporaryFileCleaning).self) {
            report.temporaryFilesRemoved = try cleaning.removeTemporaryFiles()
        }

        repository.index.removeAll()
        try await repository.loadIndex()
        return report
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
            var stack = [snapshot.tree]
            while let treeID = stack.popLast() {
                guard walked.insert(treeID).inserted else { continue }
                used.insert(treeID)
                let tree: Tree
                do {
                    tree = try await repository.loadTree(treeID, in: packMap)
                } catch let error as BunkerError {
                    throw refuse("directory listing \(treeID.short) of snapshot \(id.short) cannot be read", cause: error)
                }
                for node in tree.nodes {
                    if let sub = node.subtree { stack.append(sub) }
                    for blob in node.content ?? [] { used.insert(blob) }
                }
            }
        }
        return used
    }

    /// Copies the used blobs of `packs` into new packs, after checking each one authenticates and
    /// matches its id: sealed bytes as they are, except bundles holding members no snapshot uses,
    /// which are made again from the used members. Returns the packs written.
    private func copyUsedBlobs(of packs: [ID], packBlobs: [ID: [PackedBlob]], home: [ID: ID]) async throws -> [(id: ID, blobs: [PackedBlob])] {
        guard !packs.isEmpty else { return [] }
        progress?.update {
            $0 = OperationProgress.Counters()
            $0.filesTotal = packs.count
            $0.bytesTotal = packs.reduce(0) { $0 + UInt64(Self.packSize(packBlobs[$1] ?? [])) }
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

    private func removeIfPresent(_ handle: ObjectHandle) async throws {
        do {
            try await repository.storage.remove(handle)
        } catch let error as BunkerError where error.code == .objectNotFound {
            // Deleted by an earlier, interrupted prune.
        }
    }

    /// A pack's size as its complete index entry implies (docs/repository-format.md §6.1).
    static func packSize(_ blobs: [PackedBlob]) -> Int {
        PackFormat.packSize(blobs)
    }
}

/// The packs a repack has written, in order.
private actor WrittenPacks {
    var packs: [(id: ID, blobs: [PackedBlob])] = []
    func append(_ id: ID, _ blobs: [PackedBlob]) { packs.append((id, blobs)) }
}
