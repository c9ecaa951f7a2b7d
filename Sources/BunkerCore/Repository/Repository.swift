import Foundation
import Synchronization

/// An open repository: its storage, master key, config and index.
///
/// Write order is packs → index → snapshot, and deletion goes the other way, so that a process
/// dying at any moment leaves every earlier snapshot whole.
public final class Repository: Sendable {
    public let storage: any Storage
    public let key: MasterKey
    public let config: RepositoryConfig
    public let index: MasterIndex
    /// The key file that opened the repository.
    public let keyName: String
    /// The clock; injected so that locks and snapshots can be tested without waiting.
    public let now: @Sendable () -> Date
    private let lockWaitSetting = Mutex<TimeInterval>(0)
    /// Bundles opened lately or being opened: a bundle holds many small files, each restored on
    /// its own, several at once.
    private let bundles = BundleCache(limit: 8)
    /// Decompression contexts for reads whose caller brings none (every directory listing):
    /// making one per read was 3 % of a no-change backup's CPU.
    private let decompressors = WorkerPool { ZstdDecompressor() }
    private let lockTimingSetting = Mutex(LockTiming())
    /// The locks this object holds; every write through ``storage`` checks them.
    let heldLocks: HeldLocks

    /// Seconds ``withLock(exclusive:_:)`` waits for a conflicting lock to be released before it
    /// fails with "repository is busy"; 0 (the default) fails at once.
    public var lockWait: TimeInterval {
        get { lockWaitSetting.withLock { $0 } }
        set { lockWaitSetting.withLock { $0 = newValue } }
    }

    /// The lock refresh schedule; tests shorten it.
    var lockTiming: LockTiming {
        get { lockTimingSetting.withLock { $0 } }
        set { lockTimingSetting.withLock { $0 = newValue } }
    }

    init(storage: any Storage, key: MasterKey, config: RepositoryConfig, keyName: String, now: @escaping @Sendable () -> Date) {
        heldLocks = HeldLocks(storage: storage, now: now)
        self.storage = LockCheckedStorage(base: storage, locks: heldLocks)
        self.key = key
        self.config = config
        self.index = MasterIndex()
        self.keyName = keyName
        self.now = now
    }

    /// Creates a new repository in `storage`, protected by `password`; with `sharing`, under
    /// that repository's master key (a copy destination whose blob ids and packs match it).
    public static func create(
        storage: any Storage, password: String, config: RepositoryConfig = .new(),
        kdf: KDFParameters = .standard, sharing: MasterKey? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> Repository {
        guard !password.isEmpty else {
            throw BunkerError(.invalidArgument, "An empty password is not allowed; every repository is encrypted.")
        }
        try validateCompressionLevel(config.compressionLevel)
        try config.chunker.validate()
        try config.objectLock?.validate()
        let target = try lockedIfAsked(storage, config, now: now)
        if try await target.exists(.config) {
            throw BunkerError(.repositoryExists, "A repository already exists there; use it, or choose an empty location.")
        }
        // Keys without a config are leftovers of an interrupted init: they protect nothing, and
        // one sealed under the same password would shadow the new master key.
        for info in try await target.list(.key) {
            try await target.remove(info.handle)
        }
        let master = sharing ?? MasterKey.generate()
        let keyFile = try KeyFile.make(master: master, password: password, parameters: kdf, now: now()).encoded()
        let keyName = ID.sha256(of: keyFile).hex
        try await target.save(ObjectHandle(.key, keyName), data: keyFile)
        let sealed = try master.seal(JSONCoding.encoder.encode(config))
        // The config is written last: a location without it is not a repository yet.
        try await target.save(.config, data: sealed)
        return Repository(storage: target, key: master, config: config, keyName: keyName, now: now)
    }

    /// Opens the repository with `password`, trying every key file, and loads the index.
    public static func open(
        storage: any Storage, password: String, now: @escaping @Sendable () -> Date = { Date() }, loadIndex: Bool = true
    ) async throws -> Repository {
        let sealedConfig: Data
        do {
            sealedConfig = try await storage.load(.config)
        } catch let error as BunkerError where error.code == .objectNotFound {
            throw BunkerError(.repositoryNotFound, "There is no repository there (no config object). Create one with `bunker init`, or check --repo / BUNKER_REPOSITORY.")
        }
        var unlocked: (MasterKey, String)?
        var untried: BunkerError?
        for info in try await storage.list(.key).sorted(by: { $0.handle.name < $1.handle.name }) {
            guard let data = try? await storage.load(info.handle),
                  let file = try? JSONCoding.decoder.decode(KeyFile.self, from: data) else { continue }
            do {
                unlocked = (try file.unlock(password: password), info.handle.name)
                break
            } catch let error as BunkerError where error.code == .unsupportedFormat || error.code == .outOfMemory {
                untried = untried ?? error
            } catch {
                continue
            }
        }
        guard let (master, keyName) = unlocked else {
            // A key this build cannot read, or could not try for want of memory, may be the one
            // the password belongs to: say so rather than call the password wrong.
            if let untried { throw untried }
            throw BunkerError(.wrongPassword, "Wrong password: no key of this repository opens with it. Check BUNKER_PASSWORD or --password-file.")
        }
        let configData: Data
        do {
            configData = try master.open(sealedConfig)
        } catch {
            throw BunkerError(.corruptObject, "The repository's config object is damaged and cannot be decrypted.", cause: error)
        }
        let config = try JSONCoding.decoder.decode(RepositoryConfig.self, from: configData)
        guard config.version <= RepositoryConfig.currentVersion else {
            throw BunkerError(.unsupportedFormat, "The repository has format version \(config.version); this Bunker reads up to \(RepositoryConfig.currentVersion). Upgrade Bunker.")
        }
        let repository = Repository(storage: try lockedIfAsked(storage, config, now: now), key: master, config: config, keyName: keyName, now: now)
        if loadIndex { try await repository.loadIndex() }
        return repository
    }

    /// `storage` behind an ``ObjectLockStorage`` when the config asks for object lock, so that
    /// every writer of the repository applies the retention without being told.
    private static func lockedIfAsked(_ storage: any Storage, _ config: RepositoryConfig, now: @escaping @Sendable () -> Date) throws -> any Storage {
        guard let settings = config.objectLock, storage.capability(ObjectLockStorage.self) == nil else { return storage }
        return try ObjectLockStorage(storage, settings: settings, now: now)
    }

    // MARK: - Sealed objects

    /// Seals `plaintext` and stores it under the SHA-256 of the stored bytes.
    @discardableResult
    func saveSealed(_ kind: ObjectKind, _ plaintext: Data) async throws -> ObjectHandle {
        let sealed = try key.seal(plaintext)
        let handle = ObjectHandle(kind, ID.sha256(of: sealed))
        try await storage.save(handle, data: sealed)
        return handle
    }

    /// Seals `plaintext` and stores it under `name` (a segment of the service's records, named
    /// by what it holds); fails with ``BunkerError/Code/objectExists`` if the name is taken.
    public func saveSealed(_ plaintext: Data, as handle: ObjectHandle) async throws {
        try await storage.save(handle, data: try key.seal(plaintext))
    }

    /// Loads and decrypts an object saved by ``saveSealed(_:as:)``.
    public func loadSealed(_ handle: ObjectHandle) async throws -> Data {
        let data = try await storage.load(handle)
        do {
            return try key.open(data)
        } catch {
            throw BunkerError(.corruptObject, "\(handle) is damaged: it fails authentication.", cause: error)
        }
    }

    /// Loads an object named by its SHA-256, checks the name, and decrypts it.
    func loadSealed(_ kind: ObjectKind, _ id: ID) async throws -> Data {
        let handle = ObjectHandle(kind, id)
        let data = try await storage.load(handle)
        guard ID.sha256(of: data) == id else {
            throw BunkerError(.corruptObject, "\(handle) is damaged: its SHA-256 does not match its name.")
        }
        do {
            return try key.open(data)
        } catch {
            throw BunkerError(.corruptObject, "\(handle) is damaged: it fails authentication.", cause: error)
        }
    }

    // MARK: - Index

    /// Reads every index file into memory; a damaged one fails, naming it.
    public func loadIndex() async throws {
        index.replaceLoaded(with: try await readIndexFiles())
    }

    /// Every index file the storage lists, read, decoded and added to a fresh index one at a time
    /// (a decoded file is dropped as soon as it is added).
    ///
    /// An index file listed and gone before it is read was superseded by a prune, which writes
    /// the file replacing it first: the listing is then taken again, so that a process opening
    /// the repository while a prune runs reads a whole index (or, a few times unlucky, says so).
    private func readIndexFiles() async throws -> MasterIndex.Loading {
        var attempts = 0
        while true {
            attempts += 1
            var loading = MasterIndex.Loading()
            var vanished = false
            for info in try await storage.list(.index) {
                guard let id = ID(hex: info.handle.name) else { continue }
                do {
                    loading.add(try IndexFile(decoding: try await loadSealed(.index, id), name: id), name: id)
                } catch let error as BunkerError where error.code == .objectNotFound {
                    guard attempts < 5 else {
                        throw BunkerError(.repositoryLocked, "The repository is busy: its index changed while it was read (a prune is running); try again when it has finished.", cause: error)
                    }
                    vanished = true
                    break
                } catch let error as BunkerError where error.code == .corruptObject || error.code == .unsupportedFormat {
                    throw BunkerError(.corruptObject, "Index file index/\(id.hex) is damaged, so the repository cannot be used safely; run `bunker verify` to see what it affects.", cause: error)
                }
            }
            if !vanished { return loading }
            try await Task.sleep(for: .milliseconds(50 * attempts))
        }
    }

    /// Reads the index again if the set of index files changed since it was loaded.
    ///
    /// A process reads the index when it opens the repository, long before it takes a lock (the
    /// server keeps it for days); a prune that ran in between may have deleted packs that the old
    /// index names, and a backup that deduplicated against them would write a snapshot with
    /// missing data. ``withLock(exclusive:_:)`` calls this once the lock is held, when nothing can
    /// replace index files any more. Any difference counts: an index file gone (a prune replaced
    /// it) or one this process has not read (another writer's, or a prune's). Packs this process
    /// wrote and has not indexed yet stay known: only a backup running beside the caller, under
    /// its own shared lock, has such packs, and no prune can have run meanwhile.
    public func reloadIndexIfChanged() async throws {
        let loaded = Set(index.indexFileIDs)
        // A repository opened without its index (verify reads it itself) is left that way.
        guard !loaded.isEmpty || index.count > 0 else { return }
        let present = Set(try await storage.list(.index).compactMap { ID(hex: $0.handle.name) })
        var changed = !present.subtracting(loaded).isEmpty
        if !changed {
            for id in loaded.subtracting(present) {
                // A listing may be incomplete: ask by name before concluding the file is gone.
                if !(try await storage.exists(ObjectHandle(.index, id))) {
                    changed = true
                    break
                }
            }
        }
        guard changed else { return }
        index.replaceLoaded(with: try await readIndexFiles())
    }

    /// Writes an index file naming the packs this process wrote since the last one. If that
    /// fails, the packs stay waiting for the next one.
    func flushIndex() async throws {
        let packs = index.takeUnsaved()
        guard !packs.isEmpty else { return }
        let handle: ObjectHandle
        do {
            handle = try await saveSealed(.index, IndexFile(packs: packs).encoded())
        } catch {
            index.returnUnsaved(packs)
            throw error
        }
        if let id = ID(hex: handle.name) { index.add(IndexFile(), name: id) }
    }

    // MARK: - Blobs

    /// Loads a blob, authenticates it, decompresses it and checks its id against its plaintext.
    public func loadBlob(_ id: ID, decompressor: ZstdDecompressor? = nil) async throws -> Data {
        guard let location = index.lookup(id) else {
            throw BunkerError(.objectNotFound, "Blob \(id.short) is in no index: the repository is incomplete (run `bunker verify`).")
        }
        return try await loadBlob(location, decompressor: decompressor)
    }

    /// Loads a blob from a known location.
    public func loadBlob(_ location: BlobLocation, decompressor: ZstdDecompressor? = nil) async throws -> Data {
        let blob = location.blob
        let handle = ObjectHandle(.pack, location.pack)
        let sealed = try await storage.load(handle, range: Int(blob.offset)..<(Int(blob.offset) + Int(blob.length)))
        return try decodeBlob(consume sealed, blob, pack: location.pack, decompressor: decompressor)
    }

    /// Loads several blobs in order, reading runs that lie close together in one pack with one
    /// request of at most 8 MiB, and opening each bundle once however many of its members are
    /// asked (here or by another restore task at the same time).
    public func loadBlobs(_ ids: [ID], decompressor: ZstdDecompressor? = nil) async throws -> [Data] {
        try await loadBlobs(ids, decompressor: decompressor, checked: true)
    }

    /// ``loadBlobs(_:decompressor:)`` without checking each blob against its id (see
    /// ``BlobLoader/loadContent(_:decompressor:)``: the content's SHA-256 is checked instead).
    public func loadContent(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data] {
        try await loadBlobs(ids, decompressor: decompressor, checked: false)
    }

    private func loadBlobs(_ ids: [ID], decompressor: ZstdDecompressor?, checked: Bool) async throws -> [Data] {
        let locations = try ids.map { id -> BlobLocation in
            guard let location = index.lookup(id) else {
                throw BunkerError(.objectNotFound, "Blob \(id.short) is in no index: the repository is incomplete (run `bunker verify`).")
            }
            return location
        }
        return try await loadBlobs(at: locations, decompressor: decompressor, checked: checked)
    }

    /// Loads the blobs at `locations`, in order, as ``loadBlobs(_:decompressor:)`` does.
    func loadBlobs(at locations: [BlobLocation], decompressor: ZstdDecompressor?, checked: Bool = true) async throws -> [Data] {
        let pooled = decompressor == nil ? decompressors.take() : nil
        defer { if let pooled { decompressors.put(pooled) } }
        let decompressor = decompressor ?? pooled!
        let gap = readGap
        var result: [Data] = []
        result.reserveCapacity(locations.count)
        var i = 0
        while i < locations.count {
            let first = locations[i]
            let firstKey = BundleCache.Key(pack: first.pack, offset: first.blob.offset)
            if first.blob.member != nil, let bundle = bundles.kept(firstKey) {
                while i < locations.count, locations[i].pack == first.pack, locations[i].blob.offset == first.blob.offset {
                    result.append(try extractBlob(locations[i].blob, from: bundle, pack: first.pack, checked: checked))
                    i += 1
                }
                continue
            }
            let start = Int(first.blob.offset)
            var end = start + Int(first.blob.length)
            var j = i + 1
            while j < locations.count, locations[j].pack == first.pack {
                let offset = Int(locations[j].blob.offset)
                let unitEnd = offset + Int(locations[j].blob.length)
                if offset >= start && unitEnd <= end {
                    // In a unit already read: another member of the same bundle, or a repeat.
                    j += 1
                } else if offset >= end && offset - end <= gap && unitEnd - start <= 8 << 20 {
                    end = unitEnd
                    j += 1
                } else {
                    break
                }
            }
            let range = start..<end
            if first.blob.member != nil && range.count == Int(first.blob.length) {
                // One bundle alone (a small file): open it once for everyone asking now.
                let bundle = try await bundles.plaintext(firstKey) { [self] in
                    let sealed = try await storage.load(ObjectHandle(.pack, first.pack), range: range)
                    return try openUnit(sealed, first.blob, pack: first.pack, decompressor: nil)
                }
                for location in locations[i..<j] { result.append(try extractBlob(location.blob, from: bundle, pack: first.pack, checked: checked)) }
                i = j
                continue
            }
            let data = try await storage.load(ObjectHandle(.pack, first.pack), range: range)
            var opened: (offset: UInt32, plaintext: Data)?
            for location in locations[i..<j] {
                let blob = location.blob
                if opened?.offset != blob.offset {
                    let at = data.startIndex + Int(blob.offset) - start
                    opened = (blob.offset, try openUnit(data[at..<(at + Int(blob.length))], blob, pack: first.pack, decompressor: decompressor))
                    if blob.member != nil { bundles.keep(BundleCache.Key(pack: first.pack, offset: blob.offset), opened!.plaintext) }
                }
                result.append(try extractBlob(blob, from: opened!.plaintext, pack: first.pack, checked: checked))
            }
            i = j
        }
        return result
    }

    /// How many bytes between two wanted units of a pack are read (and dropped) rather than
    /// asking twice: none from a local directory, where a second read costs a system call; up to
    /// 1 MiB from an object store (a storage with a concurrency limit), where each request waits
    /// a round trip and is billed, and a file's chunks lie between those of the files backed up
    /// beside it.
    var readGap: Int {
        storage.capability(ConcurrencyLimitedStorage.self) == nil ? 0 : 1 << 20
    }

    /// Packs a backup uploads at once: half the object store's request limit (the other half
    /// stays for reading trees and the index, and each pack in flight holds its 8 MiB), one to a
    /// local directory (see ``Packer``).
    var parallelPackWrites: Int {
        storage.capability(ConcurrencyLimitedStorage.self).map { max(1, $0.limit / 2) } ?? 1
    }

    /// Decrypts, decompresses and checks one sealed blob (for a bundle member: its bundle, of
    /// which the member is taken).
    func decodeBlob(_ sealed: consuming Data, _ blob: PackedBlob, pack: ID, decompressor: ZstdDecompressor?, checked: Bool = true) throws -> Data {
        try extractBlob(blob, from: openUnit(sealed, blob, pack: pack, decompressor: decompressor), pack: pack, checked: checked)
    }

    /// Authenticates and decompresses the sealed unit holding `blob`: the blob itself, or its
    /// whole bundle. Returns the unit's plaintext.
    ///
    /// `sealed` is let go of once decrypted, before decompressing: the parent listing of a folder
    /// holding a large database is tens of MB in each of its three forms.
    func openUnit(_ sealed: consuming Data, _ blob: PackedBlob, pack: ID, decompressor: ZstdDecompressor?) throws -> Data {
        let where_ = blob.member == nil ? "blob \(blob.id.short) in pack data/\(pack.hex)" : "bundle holding blob \(blob.id.short) in pack data/\(pack.hex)"
        var plain: Data
        do {
            plain = try key.open(sealed)
        } catch {
            throw BunkerError(.corruptObject, "Damaged \(where_): it fails authentication.")
        }
        _ = consume sealed
        if blob.rawLength > 0 {
            do {
                let size = Int(blob.rawLength)
                plain = try decompressor.map { try $0.decompress(plain, size: size) }
                    ?? decompressors.with { try $0.decompress(plain, size: size) }
            } catch {
                throw BunkerError(.corruptObject, "Damaged \(where_): it does not decompress.")
            }
        }
        return plain
    }

    /// The blob's plaintext, taken from its unit's plaintext and checked against its id (unless
    /// `checked` is false: a file's content, whose SHA-256 is checked as a whole).
    func extractBlob(_ blob: PackedBlob, from unit: Data, pack: ID, checked: Bool = true) throws -> Data {
        var plain = unit
        if let member = blob.member {
            let start = unit.startIndex + Int(member.offset)
            guard Int(member.offset) + Int(member.length) <= unit.count else {
                throw BunkerError(.corruptObject, "Damaged bundle holding blob \(blob.id.short) in pack data/\(pack.hex): it is shorter than its members.")
            }
            plain = unit[start..<(start + Int(member.length))]
        }
        guard !checked || key.blobID(of: plain) == blob.id else {
            throw BunkerError(.corruptObject, "Damaged blob \(blob.id.short) in pack data/\(pack.hex): its content does not match its id.")
        }
        return plain
    }

    /// Loads and decodes a tree.
    public func loadTree(_ id: ID) async throws -> Tree {
        try await loadTree(id, in: index)
    }

    /// Loads and decodes a tree found in `index` rather than the repository's own (prune reads
    /// through a pack map of its own).
    func loadTree(_ id: ID, in index: MasterIndex) async throws -> Tree {
        try await loadTree(id, in: index, TreeCoding.decode)
    }

    /// Loads a tree as an outline, whose nodes are decoded when asked for: one page of a folder
    /// of 100,000 files, or one name looked up in it, without decoding them all.
    public func loadTreeOutline(_ id: ID) async throws -> TreeOutline {
        try await loadTree(id, in: index, TreeCoding.outline)
    }

    /// Loads a tree blob, authenticated, and reads it with `decode`.
    private func loadTree<T>(_ id: ID, in index: MasterIndex, _ decode: (Data) throws -> T) async throws -> T {
        guard let location = index.lookup(id) else {
            throw BunkerError(.objectNotFound, "Blob \(id.short) is in no index: the repository is incomplete (run `bunker verify`).")
        }
        let data = try await loadBlob(location)
        do {
            return try decode(data)
        } catch {
            throw BunkerError(.corruptObject, "Tree \(id.short) is not a valid directory listing.", cause: error)
        }
    }

    // MARK: - Snapshots

    /// Every readable snapshot, oldest first. A damaged one is left out here (so that it blocks
    /// no backup or restore of the others); `bunker verify` reports it.
    public func snapshots() async throws -> [(id: ID, snapshot: Snapshot)] {
        var result: [(id: ID, snapshot: Snapshot)] = []
        for info in try await storage.list(.snapshot) {
            guard let id = ID(hex: info.handle.name) else { continue }
            do {
                result.append((id, try await loadSnapshot(id)))
            } catch let error as BunkerError where error.code == .corruptObject {
                continue
            }
        }
        return result.sorted { ($0.snapshot.time, $0.id.hex) < ($1.snapshot.time, $1.id.hex) }
    }

    /// Reads one snapshot.
    public func loadSnapshot(_ id: ID) async throws -> Snapshot {
        let data: Data
        do {
            data = try await loadSealed(.snapshot, id)
        } catch let error as BunkerError where error.code == .objectNotFound {
            throw BunkerError(.snapshotNotFound, "Snapshot \(id.short) does not exist; `bunker snapshots` lists them.")
        }
        do {
            return try JSONCoding.decoder.decode(Snapshot.self, from: data)
        } catch {
            throw BunkerError(.corruptObject, "Snapshot \(id.short) cannot be decoded.", cause: error)
        }
    }

    /// Finds a snapshot by full id, unique prefix, or `latest`.
    public func findSnapshot(_ reference: String) async throws -> (id: ID, snapshot: Snapshot) {
        let all = try await snapshots()
        if reference == "latest" {
            guard let last = all.last else {
                throw BunkerError(.snapshotNotFound, "The repository has no snapshots yet; run `bunker backup` first.")
            }
            return last
        }
        let needle = reference.lowercased()
        guard needle.count >= 4, needle.allSatisfy(\.isHexDigit) else {
            throw BunkerError(.invalidArgument, "\"\(reference)\" is not a snapshot id; give at least 4 hex digits or `latest`.")
        }
        let matches = all.filter { $0.id.hex.hasPrefix(needle) }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw BunkerError(.snapshotNotFound, "No snapshot matches \"\(reference)\"; `bunker snapshots` lists them.")
        default: throw BunkerError(.invalidArgument, "\"\(reference)\" matches \(matches.count) snapshots; give more digits.")
        }
    }

    /// Writes a snapshot: the last step of a backup.
    func saveSnapshot(_ snapshot: Snapshot) async throws -> ID {
        let handle = try await saveSealed(.snapshot, JSONCoding.encoder.encode(snapshot))
        return ID(hex: handle.name)!
    }
}
