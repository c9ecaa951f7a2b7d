import Foundation
import Synchronization

/// Turns plaintext blobs into sealed pack entries: skips the ones the repository already has,
/// compresses, encrypts and hands the rest to the backup's ``Packer``.
///
/// Whether a blob is stored is the ``WriteSession``'s decision (``WriteSession/claim(_:)``); every
/// blob claimed here reaches the packer, at the latest in ``flush()``, or the session releases it
/// after a failure. Safe to call from many tasks at once: the file saver seals up to two batches
/// of a file at a time, for each of ``FileSaver/workers`` files.
final class BlobSaver: Sendable {
    private let repository: Repository
    private let session: WriteSession
    private let packer: Packer
    private let compressors: WorkerPool<ZstdCompressor>
    private let progress: OperationProgress?
    /// What this backup added: counted here, where blobs are sealed, and copied into the summary.
    private let added = Mutex((blobs: 0, plaintext: UInt64(0), stored: UInt64(0)))
    /// New small data blobs waiting for their bundle to fill up (see ``save(_:_:)``).
    private let pendingBundle = Mutex<(blobs: [(id: ID, plaintext: Data)], bytes: Int)>(([], 0))

    /// Bytes of chunks handed to one sealing task, and the size a bundle is filled to.
    static let batchBytes = 512 << 10
    /// New data chunks smaller than this are stored in bundles (see ``save(_:_:)``).
    static let bundleMemberLimit = 64 << 10

    /// See ``BackupRequest/storedBudget``.
    private let budget: UInt64?

    init(session: WriteSession, repository: Repository, compressionLevel: Int, budget: UInt64? = nil, progress: OperationProgress?) {
        self.repository = repository
        self.budget = budget
        self.session = session
        self.progress = progress
        self.compressors = WorkerPool { ZstdCompressor(level: compressionLevel) }
        self.packer = Packer(storage: repository.storage, key: repository.key, targetSize: repository.config.packSize,
                             parallelWrites: repository.parallelPackWrites) { id, blobs, _ in
            try await session.packWritten(id, blobs: blobs)
        }
    }

    /// Saves a blob unless the repository (or this backup) already has it; returns its id.
    func save(_ type: BlobType, _ plaintext: consuming Data) async throws -> ID {
        try await save(type, [plaintext])[0]
    }

    /// Saves the blobs the repository (and this backup) does not have yet; returns every id.
    ///
    /// New data blobs below ``bundleMemberLimit`` (a database's page chunks, small files) are
    /// stored in bundles of about ``batchBytes``, filled across files: one compression over half a
    /// MiB instead of one per page or document (zstd finds far more to share: 12% less for the
    /// benchmark's database, 19% for its documents, and the per-call cost is paid once), one seal,
    /// and a 36-byte header entry per member instead of 69 bytes of seal and entry. Each member
    /// keeps its own id, so deduplication stays per chunk.
    ///
    /// The plaintexts are let go of as soon as they are sealed (see ``seal(_:type:)``). `known`
    /// holds their ids when the caller computed them on the way (``FileSaver``), nil otherwise.
    func save(_ type: BlobType, _ plaintexts: consuming [Data], ids known: [ID]? = nil) async throws -> [ID] {
        precondition(known == nil || known!.count == plaintexts.count)
        var ids: [ID] = []
        var fresh: [(id: ID, plaintext: Data)] = []
        for (i, plaintext) in plaintexts.enumerated() {
            let id = known?[i] ?? repository.key.blobID(of: plaintext)
            ids.append(id)
            if session.claim(id) { fresh.append((id, plaintext)) }
        }
        plaintexts = []
        guard !fresh.isEmpty else { return ids }
        let bundling = type == .data && repository.config.version >= RepositoryConfig.bundlesSince
        var units: [[(id: ID, plaintext: Data)]] = []
        for blob in fresh {
            if bundling && blob.plaintext.count < BlobSaver.bundleMemberLimit {
                pendingBundle.withLock {
                    $0.blobs.append(blob)
                    $0.bytes += blob.plaintext.count
                }
            } else {
                units.append([blob])
            }
        }
        fresh = []
        if let full = takePendingBundle(ifAtLeast: BlobSaver.batchBytes) { units.append(full) }
        guard !units.isEmpty else { return ids }
        var sealed: [Packer.Entry] = []
        // Each unit leaves `units` as it is sealed, so that its plaintext is not held beside its
        // sealed form.
        units.reverse()
        while let unit = units.popLast() { sealed.append(try seal(unit, type: type)) }
        try await packer.add(sealed)
        return ids
    }

    /// Saves a blob whose plaintext `produce` hands to the given sink piece by piece (returning
    /// its length): each piece is hashed for the blob's id and compressed as it comes, so that the
    /// plaintext is never held whole. For directory listings of tens of MB (``TreeSaver``); such a
    /// listing is compressed even when the repository turns out to have it, which one that
    /// changed seldom does.
    func saveStreamed(_ type: BlobType, expectedLength: Int, _ produce: (@escaping (UnsafeRawBufferPointer) -> Void) -> Int) async throws -> ID {
        let compressor = compressors.take()
        defer { compressors.put(compressor) }
        let frame = ZstdFrameWriter(compressor: compressor, expectedOutput: expectedLength / 2)
        var hasher = repository.key.blobIDHasher()
        let length = produce { piece in
            hasher.update(data: piece)
            frame.append(piece)
        }
        let id = ID(digest: hasher.finalize())
        // Stored compressed whatever the ratio (a listing's JSON always shrinks): the unit records
        // its plaintext length, which is all a reader needs. The compressed form is let go of
        // once sealed, before the packer copies the sealed one.
        let sealed: Packer.Entry
        do {
            let compressed = try frame.finish()
            guard session.claim(id) else { return id }
            sealed = try entry(sealing: compressed, members: [(id, length)], rawLength: length, type: type)
        }
        try await packer.add([sealed])
        return id
    }

    /// Seals the bundle still filling, however small, and writes the last pack; call once every
    /// blob of the backup has been saved.
    func flush() async throws {
        if let last = takePendingBundle(ifAtLeast: 0) { try await packer.add([try seal(last)]) }
        try await packer.flush()
    }

    /// After the backup failed elsewhere: stops and waits for the packs still being uploaded,
    /// before the session settles the index.
    func abandon() async {
        await packer.abandon()
    }

    /// Adds what this saver stored to `summary`.
    func count(into summary: inout BackupSummary) {
        let added = added.withLock { $0 }
        summary.blobsAdded += added.blobs
        summary.dataAdded += added.plaintext
        summary.dataAddedStored += added.stored
    }

    /// The blobs waiting for a bundle, once they hold at least `bytes` (0: whatever is left).
    private func takePendingBundle(ifAtLeast bytes: Int) -> [(id: ID, plaintext: Data)]? {
        pendingBundle.withLock { pending in
            guard !pending.blobs.isEmpty, pending.bytes >= bytes else { return nil }
            defer { pending = ([], 0) }
            return pending.blobs
        }
    }

    /// Compresses (when that makes it smaller) and seals one blob, or several as a bundle, and
    /// counts what is added.
    ///
    /// A compressed unit's plaintext is let go of before the seal: the listing of a folder holding
    /// a large database is 38 MB of JSON at 10 GiB, and its plaintext, compressed and sealed
    /// forms were held at once at the peak of such a backup.
    private func seal(_ blobs: consuming [(id: ID, plaintext: Data)], type: BlobType = .data) throws -> Packer.Entry {
        let members = blobs.map { (id: $0.id, length: $0.plaintext.count) }
        var plaintext: Data
        if blobs.count == 1 {
            plaintext = blobs[0].plaintext
        } else {
            plaintext = Data(capacity: members.reduce(0) { $0 + $1.length })
            for i in blobs.indices { plaintext.append(blobs[i].plaintext) }
        }
        blobs = []
        let plaintextLength = plaintext.count
        var compressed = compressors.with { $0.compress(plaintext) }
        let rawLength = compressed == nil ? 0 : plaintextLength
        if let packed = compressed.take() {
            plaintext = Data()
            return try entry(sealing: packed, members: members, rawLength: rawLength, type: type)
        }
        return try entry(sealing: plaintext, members: members, rawLength: rawLength, type: type)
    }

    /// Seals a unit's stored form (compressed when `rawLength` is not 0), counts what is added
    /// against the size budget, and makes its entry: one blob, or a bundle of `members`.
    private func entry(sealing payload: Data, members: [(id: ID, length: Int)], rawLength: Int, type: BlobType) throws -> Packer.Entry {
        let data = try repository.key.seal(payload)
        let plaintextLength = members.reduce(0) { $0 + $1.length }
        let stored = added.withLock {
            $0.blobs += members.count
            $0.plaintext += UInt64(plaintextLength)
            $0.stored += UInt64(data.count)
            return $0.stored
        }
        if let budget, stored > budget {
            throw BunkerError(.storageFull, "This backup would grow the repository past its size budget: it may add \(budget) bytes and has stored \(stored) so far. No snapshot was written; run `bunker cleanup` to free space under the retention policy, or raise [repository] max_size.")
        }
        progress?.update { $0.bytesStored += UInt64(data.count) }
        if members.count == 1 {
            return Packer.Entry(type: type, id: members[0].id, sealed: data, rawLength: rawLength)
        }
        return Packer.Entry(bundle: members.map { ($0.id, $0.length) }, sealed: data, rawLength: rawLength)
    }
}
