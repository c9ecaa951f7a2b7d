import BunkerCore
import Foundation

/// Repositories for tests: cheap scrypt, small chunks and packs so that a few MiB of data span
/// many chunks and packs.
public enum TestRepository {
    public static let password = "correct horse battery staple"

    /// 16 KiB / 64 KiB / 256 KiB chunks and 512 KiB packs.
    public static let smallChunks = ChunkerParameters(minSize: 16 << 10, averageSize: 64 << 10, maxSize: 256 << 10, seed: 0x5EED)

    /// Creates a repository in a local directory.
    public static func create(
        at path: String, chunker: ChunkerParameters = smallChunks, packSize: Int = 512 << 10,
        now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> Repository {
        let storage = try StorageLocation.storage(for: path, create: true)
        return try await create(storage: storage, chunker: chunker, packSize: packSize, now: now)
    }

    /// Creates a repository in any storage.
    public static func create(
        storage: any Storage, chunker: ChunkerParameters = smallChunks, packSize: Int = 512 << 10,
        now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> Repository {
        try await Repository.create(
            storage: storage, password: password,
            config: .new(compressionLevel: 3, chunker: chunker, packSize: packSize), kdf: .testing, now: now)
    }

    /// Opens a repository made by ``create(at:chunker:packSize:now:)`` afresh (a new process would).
    public static func open(at path: String, now: @escaping @Sendable () -> Date = { Date() }) async throws -> Repository {
        try await Repository.open(storage: StorageLocation.storage(for: path), password: password, now: now)
    }

    /// Opens the local repository at `path` as if from an object store (behind a concurrency
    /// limit, which makes it read ahead and read neighbouring blobs together), counting its pack
    /// reads.
    public static func openCounting(at path: String) async throws -> (Repository, LoadCountingStorage) {
        let counting = LoadCountingStorage(try StorageLocation.storage(for: path))
        let repository = try await Repository.open(storage: ConcurrencyLimitedStorage(counting, limit: 8), password: password)
        return (repository, counting)
    }

    /// The packs of `repository` that hold directory listings, and how many listings they hold.
    public static func listingPacks(of repository: Repository) -> (packs: Set<String>, listings: Int) {
        let packs = repository.index.blobsByPack().filter { $0.value.contains { $0.type == .tree } }
        return (Set(packs.keys.map(\.hex)), packs.values.reduce(0) { $0 + $1.filter { $0.type == .tree }.count })
    }

    /// Bytes of all packs under a local repository's `data/`.
    public static func packBytes(at path: String) -> UInt64 {
        guard let walker = FileManager.default.enumerator(atPath: path + "/data") else { return 0 }
        var total: UInt64 = 0
        for case let sub as String in walker {
            var st = stat()
            if lstat(path + "/data/" + sub, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, !sub.contains("/.") {
                total += UInt64(st.st_size)
            }
        }
        return total
    }

    /// Backs up `paths` and returns the snapshot id.
    @discardableResult
    public static func backup(_ repository: Repository, _ paths: [String], tags: [String] = []) async throws -> BackupResult {
        var request = BackupRequest(paths: paths)
        request.tags = tags
        return try await Archiver(repository: repository, request: request).run()
    }
}
