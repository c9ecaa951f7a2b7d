import BunkerCore
import Foundation

/// A directory under the system's temporary directory, removed when the body returns or throws.
public func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async rethrows -> R {
    let path = NSTemporaryDirectory() + "bunker-test-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { removeTree(path) }
    return try await body(path)
}

/// Removes a tree even where restored directories were made read-only, and whatever its names'
/// bytes (names that are not UTF-8 included).
public func removeTree(_ path: String) {
    let parent = (path as NSString).deletingLastPathComponent
    guard let handle = try? DirectoryHandle(path: parent.isEmpty ? "/" : parent) else { return }
    try? handle.removeTree(Array((path as NSString).lastPathComponent.utf8))
}

/// A small tmpfs of `size` (`8m`) mounted at `path` (an existing directory) for `body`, unmounted
/// after: a filesystem of its own for tests of mount points and full disks. Mounting needs root
/// (as the test suite runs here); elsewhere this throws, so the test fails and says why.
public func withTmpfs<R>(at path: String, size: String, _ body: () async throws -> R) async throws -> R {
    guard try shell("mount -t tmpfs -o size=\(size) tmpfs '\(path)'").status == 0 else {
        throw FixtureError("Cannot mount a tmpfs at \(path): the tests of mount points need root.")
    }
    defer { _ = try? shell("umount -l '\(path)'") }
    return try await body()
}
