import Foundation
import Synchronization

/// What a copy did: which snapshots it copied (and under which id in the destination), which
/// the destination had already, and what it shipped.
public struct CopyReport: Sendable, Codable {
    public struct Copied: Sendable, Codable, Equatable {
        public var source: String
        public var destination: String

        public init(source: String, destination: String) {
            self.source = source
            self.destination = destination
        }
    }

    public var copied: [Copied] = []
    /// Snapshots the destination already holds a copy of.
    public var alreadyThere: [Copied] = []
    /// Blobs the destination lacked and now has.
    public var blobsCopied = 0
    /// Their plaintext bytes, and what they take in the destination.
    public var bytesCopied: UInt64 = 0
    public var bytesStored: UInt64 = 0
    /// Whether the two repositories share key material, so that nothing had to be read that the
    /// destination already holds.
    public var sharedKeys = false
    /// Objects of kind `catalog` (audit-trail segments) the destination lacked and now has.
    public var catalogObjectsCopied = 0
    /// Packs that travelled byte for byte, under their own names (shared key material only).
    public var packsUnchanged = 0
    /// Objects of kind `wal` (archived PostgreSQL WAL and cluster records) the destination
    /// lacked and now has: a copy restores to a moment too.
    public var walObjectsCopied = 0
    /// Chunks and folders the destination held from an earlier copy, taken without reading them
    /// from the source (a folder taken whole counts once, with nothing under it read). Keys of
    /// its own only: with shared key material the destination's blobs are known by their ids,
    /// and only the listings are read.
    public var blobsReused = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case copied
        case alreadyThere = "already_there"
        case blobsCopied = "blobs_copied"
        case bytesCopied = "bytes_copied"
        case bytesStored = "bytes_stored"
        case sharedKeys = "shared_keys"
        case catalogObjectsCopied = "catalog_objects_copied"
        case packsUnchanged = "packs_unchanged"
        case walObjectsCopied = "wal_objects_copied"
        case blobsReused = "blobs_reused"
    }
}

/// Copies snapshots from one repository into another with exactly the data they need: what the
/// destination already has is not stored again, so a copy is incremental, and one killed at any
/// point leaves the destination as a killed backup would (it verifies; the next copy completes
/// and ships only what is still missing).
///
/// Blob ids are keyed by each repository's master key, so a blob is recognised across the two
/// only when they share key material (`bunker init --copy-params-from`). Then the encrypted data
/// travels as it is, never decrypted: the snapshot's trees are read to learn which blobs the
/// destination lacks, each pack holding some is read whole and checked against its name (the
/// SHA-256 of its bytes), and it is stored under the same name when every blob in it is
/// wanted, or else the sealed units that are wanted move into new packs unchanged. Trees keep
/// their ids. Otherwise every blob is read from the source, authenticated, and re-encoded under
/// the destination's key, and trees are rewritten with the new ids; only what the destination
/// lacks is stored. There an earlier copy of the same data, when the destination holds one,
/// spares reading again what it already carried (see ``earlierCopy(of:among:sources:)``).
///
/// Every object read from the source is checked before anything of it is stored (a pack by its
/// hash, a blob by its keyed id); the destination's write session settles its claims on any
/// failure.
public final class Copier: Sendable {
    let source: Repository
    let destination: Repository
    private let progress: OperationProgress?

    public init(from source: Repository, to destination: Repository, progress: OperationProgress? = nil) {
        self.source = source
        self.destination = destination
        self.progress = progress
    }

    /// Copies the snapshots `ids` of the source, oldest first.
    public func copy(_ ids: [ID]) async throws -> CopyReport {
        if destination.isReadOnly { throw ReadOnlyStorage.refusal("copy into the destination repository") }
        guard source.config.id != destination.config.id else {
            throw BunkerError(.invalidArgument, "The source and the destination are the same repository (\(source.config.id.prefix(8))); copy into another one.")
        }
        return try await destination.withLock(exclusive: false) {
            try await source.withLock(exclusive: false) {
                try await copyLocked(ids)
            }
        }
    }

    private func copyLocked(_ ids: [ID]) async throws -> CopyReport {
        var report = CopyReport()
        report.sharedKeys = source.key.sharesIdentity(with: destination.key)
        try await destination.loadIndex()
        // Which source snapshots the destination already holds a copy of, by their original.
        var copies: [ID: (id: ID, snapshot: Snapshot)] = [:]
        for (id, snapshot) in try await destination.snapshots() {
            if let original = snapshot.original { copies[original] = (id, snapshot) }
        }
        var sourceSnapshots: [ID: Snapshot]?
        var chosen: [(ID, Snapshot)] = []
        for id in ids { chosen.append((id, try await source.loadSnapshot(id))) }
        chosen.sort { $0.1.time < $1.1.time }
        progress?.update {
            $0.filesTotal = chosen.count
            $0.totalsKnown = true
        }
        for (id, snapshot) in chosen {
            try Task.checkCancellation()
            let original = snapshot.original ?? id
            if let existing = copies[original] {
                report.alreadyThere.append(.init(source: id.hex, destination: existing.id.hex))
            } else {
                let copy = try await self.copy(id, snapshot, original: original, earlier: copies, sourceSnapshots: &sourceSnapshots, report: &report)
                copies[original] = copy
                report.copied.append(.init(source: id.hex, destination: copy.id.hex))
            }
            progress?.update { $0.filesDone += 1 }
        }
        report.catalogObjectsCopied = try await copyCatalogObjects()
        report.walObjectsCopied = try await copyWalObjects(sharedKeys: report.sharedKeys)
        return report
    }

    /// Copies the `catalog` objects (the audit trails shipped into the source) that the
    /// destination lacks, so that the destination alone rebuilds the catalog on a new machine.
    /// They keep their names; each is opened under the source's key and sealed under the
    /// destination's.
    private func copyCatalogObjects() async throws -> Int {
        let present = Set(try await destination.storage.list(.catalog).map(\.handle.name))
        var copied = 0
        for info in try await source.storage.list(.catalog) where !present.contains(info.handle.name) {
            try Task.checkCancellation()
            do {
                try await destination.saveSealed(try await source.loadSealed(info.handle), as: info.handle)
                copied += 1
            } catch let error as BunkerError where error.code == .objectExists {
                // Copied by a copy that ran at the same time.
            }
        }
        return copied
    }

    /// Copies the archived WAL (objects of kind `wal`) the destination lacks, so that the
    /// destination alone restores a PostgreSQL source to a moment. A WAL file the destination
    /// holds under any stored name is not copied again. Each object is checked against the
    /// SHA-256 its name records and authenticated; with shared key material its sealed bytes
    /// travel as they are (the same name), otherwise it is sealed again under the destination's
    /// key (its name then records the new bytes' hash). Cluster records keep their names.
    private func copyWalObjects(sharedKeys: Bool) async throws -> Int {
        let present = try await destination.storage.list(.wal).map(\.handle.name)
        var presentFiles: Set<String> = []
        for name in present {
            if case .file(let scope, let file, _)? = WalObject.Name(name) { presentFiles.insert(WalObject.prefix(scope: scope, file: file.text)) }
        }
        let presentNames = Set(present)
        var copied = 0
        for info in try await source.storage.list(.wal) where !presentNames.contains(info.handle.name) {
            try Task.checkCancellation()
            let handle: ObjectHandle
            let data: Data
            switch WalObject.Name(info.handle.name) {
            case .file(let scope, let file, let stored)?:
                let prefix = WalObject.prefix(scope: scope, file: file.text)
                guard !presentFiles.contains(prefix) else { continue }
                let sealed = try await source.storage.load(info.handle)
                guard ID.sha256(of: sealed) == stored else {
                    throw BunkerError(.integrity, "WAL object wal/\(info.handle.name) of the source repository does not match its name: it is damaged. Run `bunker verify --read-data` on the source.")
                }
                let plaintext = try source.key.open(sealed)
                data = sharedKeys ? sealed : try destination.key.seal(plaintext)
                handle = ObjectHandle(.wal, sharedKeys ? info.handle.name : WalObject.name(scope: scope, file: file.text, stored: data))
                presentFiles.insert(prefix)
            case .cluster?:
                handle = info.handle
                data = try destination.key.seal(try await source.loadSealed(info.handle))
            case nil:
                continue
            }
            do {
                try await destination.storage.save(handle, data: data)
                copied += 1
            } catch let error as BunkerError where error.code == .objectExists {
                // Copied by a copy or a push that ran at the same time.
            }
        }
        return copied
    }

    /// Copies one snapshot; under keys of its own, guided by one of the destination's `earlier`
    /// copies (by their original) where one fits. Returns the copy and its id.
    private func copy(_ id: ID, _ snapshot: Snapshot, original: ID, earlier: [ID: (id: ID, snapshot: Snapshot)], sourceSnapshots: inout [ID: Snapshot]?,
                      report: inout CopyReport) async throws -> (id: ID, snapshot: Snapshot) {
        let session = WriteSession(repository: destination)
        var saver: BlobSaver?
        let root: ID
        do {
            if report.sharedKeys {
                try await shipPacks(holding: try await claimMissingBlobs(under: snapshot.tree, session: session), session: session, report: &report)
                root = snapshot.tree
            } else {
                let blobs = BlobSaver(session: session, repository: destination, compressionLevel: destination.config.compressionLevel, progress: progress)
                saver = blobs
                var translation: CopyTranslation?
                if let guide = try await earlierCopy(of: snapshot, among: earlier, sources: &sourceSnapshots) {
                    translation = try await translate(snapshot.tree, guidedBy: guide)
                }
                let reencoder = TreeReencoder(source: source, loader: try await reader(under: snapshot.tree, translation: translation),
                                              blobs: blobs, translation: translation ?? CopyTranslation(), progress: progress)
                root = try await reencoder.copy(snapshot.tree)
                report.blobsReused += reencoder.reused
                try await blobs.flush()
                var summary = BackupSummary()
                blobs.count(into: &summary)
                report.blobsCopied += summary.blobsAdded
                report.bytesCopied += summary.dataAdded
                report.bytesStored += summary.dataAddedStored
            }
            try await session.finish()
        } catch {
            await saver?.abandon()
            await session.settleAfterFailure()
            throw error
        }
        FaultPoints.hit("copy-before-snapshot")
        var copy = snapshot
        copy.tree = root
        copy.original = original
        // The parent names a snapshot of the source; the destination's own history differs.
        copy.parent = nil
        return (try await destination.saveSnapshot(copy), copy)
    }

    /// Claims, in the destination's write session, every blob under tree `root` that the
    /// destination lacks (the trees too: with shared keys they keep their ids); returns them.
    /// Every tree is read, even one the destination has: a copy killed midway may have left a
    /// tree indexed whose data never arrived.
    private func claimMissingBlobs(under root: ID, session: WriteSession) async throws -> Set<ID> {
        var claimed = Set<ID>()
        var visited = Set<ID>()
        try await source.walkListings(from: [root]) { id in
            guard visited.insert(id).inserted else { return nil }
            if session.claim(id) { claimed.insert(id) }
            return id
        } visit: { _, loaded in
            var under: [ID] = []
            for node in try loaded.get().nodes {
                if let subtree = node.subtree { under.append(subtree) }
                for blob in node.content ?? [] where session.claim(blob) { claimed.insert(blob) }
            }
            return under
        }
        return claimed
    }

    /// Ships the blobs `wanted` (claimed by `session`) in their sealed form, pack by pack: a pack
    /// whose every blob is wanted is stored unchanged under its own name; from any other, the
    /// sealed units holding wanted blobs go into new packs as they are (a bundle whole, some of
    /// whose members the destination may then hold twice until a prune).
    ///
    /// Up to ``parallelPacks`` packs are on their way at once, each read, checked and (when it
    /// travels whole) stored by a task of its own: one at a time, a copy between object stores
    /// waited for each 8 MiB download and then for its upload, with both idle in turn.
    private func shipPacks(holding wanted: Set<ID>, session: WriteSession, report: inout CopyReport) async throws {
        var byPack: [ID: Int] = [:]
        for id in wanted {
            guard let location = source.index.lookup(id) else {
                throw BunkerError(.integrity, "Blob \(id.short), which the snapshot needs, is in no pack of the source repository's index; run `bunker verify` on the source.")
            }
            byPack[location.pack, default: 0] += 1
        }
        let packer = Packer(storage: destination.storage, key: destination.key, targetSize: destination.config.packSize) { id, blobs, _ in
            try await session.packWritten(id, blobs: blobs)
        }
        let packs = byPack.keys.sorted()
        try await withThrowingTaskGroup(of: ShippedPack.self) { group in
            var next = 0
            func launch() {
                let pack = packs[next]
                let count = byPack[pack]!
                next += 1
                group.addTask { try await self.ship(pack, holding: wanted, count: count, session: session) }
            }
            while next < min(parallelPacks, packs.count) { launch() }
            while let shipped = try await group.next() {
                try Task.checkCancellation()
                if next < packs.count { launch() }
                if shipped.whole {
                    report.packsUnchanged += 1
                } else {
                    try await packer.add(shipped.entries)
                }
                report.bytesStored += shipped.bytesStored
                report.blobsCopied += shipped.blobs.count
                let plaintext = shipped.blobs.reduce(UInt64(0)) { $0 + UInt64($1.plaintextLength) }
                report.bytesCopied += plaintext
                progress?.update {
                    $0.bytesDone += plaintext
                    $0.currentPath = "pack \(shipped.pack.short)"
                }
            }
        }
        try await packer.flush()
    }

    /// Packs read (and stored) at once by ``shipPacks(holding:session:report:)``: what the
    /// object store on either side takes in uploads at once, at least two (one pack's SHA-256 is
    /// checked while the next is read).
    private var parallelPacks: Int {
        max(2, source.parallelPackWrites, destination.parallelPackWrites)
    }

    /// One source pack on its way: its blobs the destination wanted, and, unless it was stored
    /// whole, the sealed units holding them for new packs.
    private struct ShippedPack: Sendable {
        var pack: ID
        var blobs: [PackedBlob]
        /// Stored as it is, under its own name.
        var whole: Bool
        var entries: [Packer.Entry]
        var bytesStored: UInt64
    }

    /// Reads `pack` of the source and checks it against its name and the index (`count` of its
    /// blobs wanted); stores it unchanged if every blob in it is wanted, else returns the sealed
    /// units that hold the wanted ones.
    private func ship(_ pack: ID, holding wanted: Set<ID>, count: Int, session: WriteSession) async throws -> ShippedPack {
        try Task.checkCancellation()
        let data = try await source.storage.load(ObjectHandle(.pack, pack))
        guard ID.sha256(of: data) == pack else {
            throw BunkerError(.integrity, "Pack data/\(pack.hex) of the source repository does not match its name: it is damaged. Run `bunker verify --read-data` on the source; nothing of it was copied.")
        }
        let blobs = try PackFormat.readHeader(of: data, id: pack, key: source.key)
        // A blob may lie in two packs (two hosts stored it at the same moment): it is counted
        // and shipped from the one the index names, as `count` is.
        let shipped = blobs.filter { wanted.contains($0.id) && source.index.lookup($0.id)?.pack == pack }
        guard Set(shipped.map(\.id)).count == count else {
            throw BunkerError(.integrity, "Pack data/\(pack.hex) of the source repository lacks blobs its index places there; run `bunker verify --read-data` on the source.")
        }
        if blobs.allSatisfy({ wanted.contains($0.id) }) {
            do {
                try await destination.storage.save(ObjectHandle(.pack, pack), data: data)
            } catch let error as BunkerError where error.code == .objectExists {
                // Stored by an earlier copy killed before its index: the name is the content.
            }
            try await session.packWritten(pack, blobs: blobs)
            return ShippedPack(pack: pack, blobs: shipped, whole: true, entries: [], bytesStored: UInt64(PackFormat.dataLength(blobs)))
        }
        var entries: [Packer.Entry] = []
        var stored: UInt64 = 0
        let homed = Set(shipped.map(\.id))
        for unit in PackFormat.units(blobs) where unit.contains(where: { homed.contains($0.id) }) {
            let first = unit[unit.startIndex]
            let start = data.startIndex + Int(first.offset)
            let sealed = Data(data[start..<(start + Int(first.length))])
            if first.member == nil {
                entries.append(Packer.Entry(type: first.type, id: first.id, sealed: sealed, rawLength: Int(first.rawLength)))
            } else {
                entries.append(Packer.Entry(bundle: unit.map { ($0.id, Int($0.member!.length)) }, sealed: sealed, rawLength: Int(first.rawLength)))
            }
            stored += UInt64(first.length)
        }
        return ShippedPack(pack: pack, blobs: shipped, whole: false, entries: entries, bytesStored: stored)
    }

    /// What a ``TreeReencoder`` reads the tree `root` through: from an object store, a loader
    /// that reads ahead (see ``ReadAheadLoader``) knowing every listing and every blob in the
    /// order the copy asks for them, as a restore does. Asked one blob at a time, a copy of the
    /// benchmark's 1 GiB snapshot from SeaweedFS on loopback made 76,000 requests in a row and
    /// took 284 s. Guided by an earlier copy, the plan holds only what `translation` does not.
    private func reader(under root: ID, translation: CopyTranslation?) async throws -> any BlobLoader {
        guard source.readsAhead, translation?.trees[root] == nil else { return source }
        var plan = RestorePlan()
        if let translation {
            plan.trees = translation.changed
        } else {
            var seen: Set<ID> = []
            try await source.walkListings(from: [root]) { id in
                seen.insert(id).inserted ? id : nil
            } visit: { id, loaded in
                let tree = try loaded.get()
                plan.trees[id] = tree
                return tree.nodes.compactMap(\.subtree)
            }
        }
        plan.blobs = TreeReencoder.plan(under: root, trees: plan.trees, translation: translation)
        return source.readingAhead(plan)
    }
}
