import Foundation
import Synchronization

/// Turns a repository location, as users write it, into a ``Storage``.
///
/// A plain path (or `local:PATH`) is a ``LocalStorage``. A location `SCHEME://…` goes to the
/// backend registered for that scheme (``register(scheme:_:)``): adding a storage is one file
/// that conforms to ``Storage`` and registers itself, nothing here changes.
public enum StorageLocation {
    /// Opens (with `create`, prepares) the storage at a `SCHEME://…` location.
    public typealias Opener = @Sendable (_ location: String, _ create: Bool) throws -> any Storage

    private static let backends = Mutex<[String: Opener]>([:])

    /// Makes `scheme://…` locations open with `opener` (a later registration replaces one).
    public static func register(scheme: String, _ opener: @escaping Opener) {
        backends.withLock { $0[scheme.lowercased()] = opener }
    }

    /// The schemes registered, sorted.
    public static var schemes: [String] { backends.withLock { $0.keys.sorted() } }

    /// The storage at `location`; `create` makes the directories of a new local repository.
    public static func storage(for location: String, create: Bool = false) throws -> any Storage {
        guard !location.isEmpty else {
            throw BunkerError(.invalidArgument, "No repository given: use --repo PATH or set BUNKER_REPOSITORY.")
        }
        var path = location
        let explicitlyLocal = path.hasPrefix("local:")
        if explicitlyLocal { path.removeFirst("local:".count) }
        if let separator = path.range(of: "://") {
            let scheme = path[..<separator.lowerBound].lowercased()
            guard let opener = backends.withLock({ $0[scheme] }) else {
                let known = schemes.map { "\($0)://" }
                throw BunkerError(.invalidArgument, "Repository scheme \"\(scheme)\" is not supported by this build; use a local path\(known.isEmpty ? "" : " or one of " + known.joined(separator: ", ")).")
            }
            return try opener(path, create)
        }
        // `s3:/bucket/x` (one slash) is a mistyped location, not a local directory named `s3:`.
        if !explicitlyLocal, let colon = path.firstIndex(of: ":"), path[path.index(after: colon)...].hasPrefix("/") || path[path.index(after: colon)...].isEmpty {
            let scheme = path[..<colon].lowercased()
            if backends.withLock({ $0[scheme] != nil }) {
                throw BunkerError(.invalidArgument, "\(location) is not a repository location: write \(scheme)://\(path[path.index(after: colon)...].drop { $0 == "/" }) (two slashes), or ./\(path) for a local directory of that name.")
            }
        }
        let storage = LocalStorage(path: FileSystem.absolute(path))
        if create {
            var st = stat()
            if lstat(storage.root, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
               let entries = try? FileManager.default.contentsOfDirectory(atPath: storage.root),
               !Set(entries).isSubset(of: ObjectKind.allCases.map(\.rawValue)),
               !FileManager.default.fileExists(atPath: storage.root + "/config") {
                throw BunkerError(.repositoryExists, "\(storage.root) is a non-empty directory that is not a repository; choose an empty or new directory.")
            }
            let parent = (storage.root as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw BunkerError(.permissionDenied, "Cannot create \(parent): \(error.localizedDescription)")
            }
            if !FileManager.default.fileExists(atPath: storage.root + "/config") {
                try storage.create()
            }
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: storage.root, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw BunkerError(.repositoryNotFound, "There is no repository at \(storage.root). Create one with `bunker init`, or check --repo / BUNKER_REPOSITORY.")
            }
        }
        return storage
    }
}
