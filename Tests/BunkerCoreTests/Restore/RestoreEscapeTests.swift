import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// No name and no symlink can make a restore write outside its target, whatever a snapshot holds:
/// snapshots here are forged with the repository's key, as an independent writer could.
@Suite struct RestoreEscapeTests {
    /// Every entry below `dir` except those under `target`, with type, size and mtime: what a
    /// restore into `target` must leave exactly as it was.
    static func outside(_ dir: String, except target: String) -> [String: String] {
        var seen: [String: String] = [:]
        func walk(_ path: String) {
            guard path != target, let handle = try? DirectoryHandle(path: path), let entries = try? handle.entries() else { return }
            for name in entries {
                let child = path + "/" + FileName.display(name)
                guard child != target, let st = try? handle.status(of: name) else { continue }
                seen[child] = "\(st.st_mode) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
                if st.st_mode & S_IFMT == S_IFDIR { walk(child) }
            }
        }
        walk(dir)
        return seen
    }

    static let escapingNames: [String] = [
        "..", ".", "", "a/b", "/abs", "../\u{301}x", "/\u{301}etc", "..\u{301}/x", "x\0y", "../outside-file",
    ]

    @Test(arguments: escapingNames)
    func restoreRefusesANameThatCouldEscapeAndVerifyReportsIt(name: String) async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            let evil = try await forge.file(Array(name.utf8), "pwned")
            let ok = try await forge.file(Array("ok.txt".utf8), "fine")
            let id = try await forge.snapshot([try await forge.directory(Array("d".utf8), [evil, ok])])
            let target = dir + "/out/target"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            let before = Self.outside(dir, except: target)

            let snapshot = try await repo.loadSnapshot(id)
            let report = try await Restorer(loader: repo).restore(tree: snapshot.tree, to: target)
            #expect(report.failures.count == 1, "the forged entry is refused: \(report.failures)")
            #expect(report.filesRestored == 1)
            #expect(Self.outside(dir, except: target) == before, "nothing outside the target was created or changed")

            let check = try await Checker(repository: repo).check(readData: false)
            #expect(check.errors.contains { $0.kind == "damaged_tree" }, "verify reports the listing as damaged: \(check.errors.map(\.message))")
        }
    }

    @Test func duplicateNamesInOneListingAreDamage() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            let outside = dir + "/outside"
            mkdir(outside, 0o755)
            // A symlink out, and a directory of the same name holding a file "through" it.
            let link = forge.symlink(Array("d".utf8), to: Array(outside.utf8))
            let through = try await forge.directory(Array("d".utf8), [try await forge.file(Array("pwn".utf8), "pwned")])
            let id = try await forge.snapshot([try await forge.directory(Array("top".utf8), [link, through])])
            let check = try await Checker(repository: repo).check(snapshot: id)
            #expect(check.errors.contains { $0.kind == "damaged_tree" && $0.message.contains("more than once") })
            let report = try await Restorer(loader: repo).restore(tree: try await repo.loadSnapshot(id).tree, to: dir + "/target")
            #expect(!report.failures.isEmpty)
            #expect(try DirectoryHandle(path: outside).entries().isEmpty)
        }
    }

    /// A symlink that an earlier restore (or anyone) left in the target is never followed.
    @Test func aSymlinkAlreadyInTheTargetIsNeverFollowed() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            let outside = dir + "/outside"
            mkdir(outside, 0o755)
            let first = try await forge.snapshot([
                forge.symlink(Array("d".utf8), to: Array(outside.utf8)),
                forge.symlink(Array("f".utf8), to: Array((outside + "/victim").utf8)),
            ])
            try "victim".write(toFile: outside + "/victim", atomically: false, encoding: .utf8)
            let second = try await forge.snapshot([
                try await forge.directory(Array("d".utf8), [try await forge.file(Array("pwn".utf8), "pwned")]),
                try await forge.file(Array("f".utf8), "overwritten?"),
            ])
            let target = dir + "/target"
            _ = try await Restorer(loader: repo).restore(tree: try await repo.loadSnapshot(first).tree, to: target)
            let report = try await Restorer(loader: repo).restore(tree: try await repo.loadSnapshot(second).tree, to: target)
            #expect(report.failures.map(\.path) == ["d"], "the directory cannot go where a symlink is: \(report.failures)")
            #expect(try DirectoryHandle(path: outside).entries() == [Array("victim".utf8)])
            #expect(try String(contentsOfFile: outside + "/victim", encoding: .utf8) == "victim", "the file the symlink named is untouched")
            var st = stat()
            #expect(lstat(target + "/f", &st) == 0 && st.st_mode & S_IFMT == S_IFREG, "the symlink itself was replaced by the file")
        }
    }

    /// A directory swapped for a symlink while the restore runs: writes go on into the directory
    /// the restore opened, never through the symlink.
    @Test func aDirectorySwappedForASymlinkMidRestoreIsNotFollowed() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            let outside = dir + "/outside"
            mkdir(outside, 0o755)
            let inner = try await forge.directory(Array("d".utf8), [try await forge.file(Array("a".utf8), "A"), try await forge.file(Array("b".utf8), "B")])
            let id = try await forge.snapshot([inner])
            let target = dir + "/target"
            let loader = SwappingLoader(base: repo, watched: inner.subtree!) {
                rename(target + "/d", target + "/d.moved")
                symlink(outside, target + "/d")
            }
            let report = try await Restorer(loader: loader).restore(tree: try await repo.loadSnapshot(id).tree, to: target)
            #expect(report.failures.isEmpty)
            #expect(try DirectoryHandle(path: outside).entries().isEmpty, "nothing was written through the symlink")
            #expect(try String(contentsOfFile: target + "/d.moved/a", encoding: .utf8) == "A")
        }
    }

    @Test func includePathsThatCannotNameAnEntryAreRefused() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            let id = try await forge.snapshot([try await forge.file(Array("a".utf8), "A")])
            let tree = try await repo.loadSnapshot(id).tree
            for include in ["../a", "a/..", "./a", "a/\0"] {
                await #expect(throws: BunkerError.self, "\(include.debugDescription)") {
                    _ = try await Restorer(loader: repo, includes: [include]).restore(tree: tree, to: dir + "/target")
                }
            }
        }
    }

    /// Random trees built from the pieces that escape (`..`, `/`, combining marks, NUL, symlinks
    /// pointing out, absolute and relative), restored twice into one target: nothing outside the
    /// target is ever created or changed.
    @Test(arguments: 0..<24)
    func forgedTreesNeverWriteOutsideTheTarget(seed: Int) async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            let outside = dir + "/outside"
            mkdir(outside, 0o755)
            try "keep".write(toFile: outside + "/keep", atomically: false, encoding: .utf8)
            var random = SeededRandom(seed: UInt64(seed) &+ 1)
            let pieces = ["..", ".", "/", "\u{301}", "x", "y", "\0", "", "keep", "outside"]
            func name() -> [UInt8] {
                Array((0..<random.next(3) + 1).map { _ in pieces[random.next(pieces.count)] }.joined().utf8)
            }
            func nodes(depth: Int) async throws -> [Node] {
                var result: [Node] = []
                for _ in 0..<random.next(5) + 1 {
                    switch random.next(depth > 0 ? 4 : 3) {
                    case 0: result.append(try await forge.file(name(), "payload"))
                    case 1: result.append(forge.symlink(name(), to: Array((random.next(2) == 0 ? outside : "../../outside").utf8)))
                    case 2: result.append(try await forge.file(Array("x".utf8), "through"))
                    default: result.append(try await forge.directory(random.next(2) == 0 ? Array("x".utf8) : name(), try await nodes(depth: depth - 1)))
                    }
                }
                return result
            }
            let first = try await forge.snapshot(try await nodes(depth: 2))
            let second = try await forge.snapshot(try await nodes(depth: 2))
            let target = dir + "/out/target"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            let before = Self.outside(dir, except: target)
            for id in [first, second] {
                _ = try await Restorer(loader: repo).restore(tree: try await repo.loadSnapshot(id).tree, to: target)
            }
            #expect(Self.outside(dir, except: target) == before)
        }
    }
}

/// A loader that runs `swap` once, when the listing `watched` is first loaded.
final class SwappingLoader: BlobLoader, @unchecked Sendable {
    let base: any BlobLoader
    let watched: ID
    var swap: (() -> Void)?

    init(base: any BlobLoader, watched: ID, swap: @escaping () -> Void) {
        self.base = base
        self.watched = watched
        self.swap = swap
    }

    func loadBlob(_ id: ID, decompressor: ZstdDecompressor?) async throws -> Data {
        try await base.loadBlob(id, decompressor: decompressor)
    }

    func loadTree(_ id: ID) async throws -> Tree {
        if id == watched, let swap {
            self.swap = nil
            swap()
        }
        return try await base.loadTree(id)
    }
}

/// A small deterministic generator (SplitMix64), so that a failing seed can be replayed.
struct SeededRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(bound))
    }
}
