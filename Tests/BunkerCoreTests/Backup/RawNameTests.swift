@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// Names are bytes: what the filesystem holds is what a restore writes back.
@Suite struct RawNameTests {
    static let latin1 = Array("r".utf8) + [0xE9] + Array("sum".utf8) + [0xE9] + Array(".txt".utf8)
    static let badDirectory: [UInt8] = [0x64, 0xFF, 0xFE]
    static let badTarget: [UInt8] = Array("../".utf8) + [0xC3, 0x28]
    static let composed = Array("\u{E9}.txt".utf8)
    static let decomposed = Array("e\u{301}.txt".utf8)

    static func write(_ content: String, at dir: DirectoryHandle, _ name: [UInt8]) throws {
        let fd = FileName.with(name) { openat(dir.fd, $0, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
        #expect(fd >= 0)
        _ = content.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    static func read(at dir: DirectoryHandle, _ name: [UInt8]) -> String? {
        let fd = FileName.with(name) { openat(dir.fd, $0, O_RDONLY) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = Glibc.read(fd, &buffer, buffer.count)
        return String(decoding: buffer[0..<max(0, n)], as: UTF8.self)
    }

    /// A tree with a Latin-1 file name, a directory whose name is not UTF-8, a symlink whose target
    /// is not UTF-8, and two names that are canonically equivalent in Unicode but different bytes.
    static func makeTree(at path: String) throws {
        mkdir(path, 0o755)
        let src = try DirectoryHandle(path: path)
        try write("latin-1 name", at: src, latin1)
        _ = FileName.with(badDirectory) { mkdirat(src.fd, $0, 0o755) }
        try write("inside", at: try src.openDirectory(badDirectory), Array("inner".utf8))
        _ = FileName.with(badTarget) { target in FileName.with(Array("link".utf8)) { symlinkat(target, src.fd, $0) } }
        try write("composed", at: src, composed)
        try write("decomposed", at: src, decomposed)
    }

    @Test func namesAndLinkTargetsThatAreNotUTF8RoundTripByteForByte() async throws {
        try await withTemporaryDirectory { dir in
            try Self.makeTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(result.warnings.isEmpty, "\(result.warnings)")

            let reopened = try await TestRepository.open(at: dir + "/repo")
            let report = try await Restorer(loader: reopened).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            let original = try DirectoryHandle(path: dir + "/src")
            let restored = try DirectoryHandle(path: dir + "/out/src")
            #expect(try restored.entries() == original.entries())
            #expect(Self.read(at: restored, Self.latin1) == "latin-1 name")
            #expect(Self.read(at: restored, Self.composed) == "composed")
            #expect(Self.read(at: restored, Self.decomposed) == "decomposed")
            #expect(Self.read(at: try restored.openDirectory(Self.badDirectory), Array("inner".utf8)) == "inside")
            #expect(try EntryLocation(directory: restored, name: Array("link".utf8)).readLink() == Self.badTarget)

            // The listing stores the bytes, and a readable form for people.
            let root = try await reopened.loadTree(result.snapshot.tree)
            let tree = try await reopened.loadTree(root.nodes[0].subtree!)
            let node = try #require(tree.node(nameBytes: Self.latin1))
            #expect(node.name == "r\u{FFFD}sum\u{FFFD}.txt")
            #expect(node.rawName == Data(Self.latin1))
            #expect(tree.node(nameBytes: Self.composed) != tree.node(nameBytes: Self.decomposed))
        }
    }

    /// A second backup takes unchanged entries' names from the parent snapshot's listing: names
    /// that are not UTF-8 keep their bytes there too, changed file or not.
    @Test func anIncrementalBackupKeepsNamesThatAreNotUTF8() async throws {
        try await withTemporaryDirectory { dir in
            try Self.makeTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await TestRepository.backup(repo, [dir + "/src"])
            let src = try DirectoryHandle(path: dir + "/src")
            _ = FileName.with(Self.latin1) { unlinkat(src.fd, $0, 0) }
            try Self.write("changed", at: src, Self.latin1)
            let second = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(second.warnings.isEmpty, "\(second.warnings)")
            #expect(second.snapshot.summary?.filesChanged == 1)

            let report = try await Restorer(loader: repo).restore(tree: second.snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            let restored = try DirectoryHandle(path: dir + "/out/src")
            #expect(try restored.entries() == src.entries())
            #expect(Self.read(at: restored, Self.latin1) == "changed")
            #expect(Self.read(at: try restored.openDirectory(Self.badDirectory), Array("inner".utf8)) == "inside")
            let root = try await repo.loadTree(second.snapshot.tree)
            let tree = try await repo.loadTree(root.nodes[0].subtree!)
            #expect(tree.node(nameBytes: Self.badDirectory)?.rawName == Data(Self.badDirectory))
            #expect(tree.node(nameBytes: Self.latin1)?.rawName == Data(Self.latin1))
        }
    }

    /// A listing orders and finds its nodes by the bytes of their names, whether a name is kept
    /// as text or as raw bytes: byte values above 0x7F after ASCII, a prefix before the names it
    /// starts, canonically equivalent spellings apart.
    @Test func aListingOrdersAndFindsNamesByTheirBytes() {
        var generator = SystemRandomNumberGenerator()
        var names: Set<[UInt8]> = [Self.latin1, Self.badDirectory, Self.composed, Self.decomposed,
                                   Array("a".utf8), Array("ab".utf8), Array("a\u{7F}".utf8), [0x61, 0xC3, 0xA9], [0xFF], [0x7F]]
        while names.count < 400 {
            let length = Int.random(in: 1...6, using: &generator)
            // Few distinct bytes, so that many names share prefixes or are prefixes of others.
            names.insert((0..<length).map { _ in [0x61, 0x62, 0x7F, 0x80, 0xC3, 0xA9, 0xFF].randomElement(using: &generator)! })
        }
        let nodes = names.shuffled(using: &generator).map { Node(nameBytes: $0, type: .file, mode: 0o644, mtimeNanoseconds: 0, uid: 0, gid: 0) }
        let tree = Tree(nodes: nodes)
        let expected = names.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(tree.nodes.map(\.nameBytes) == expected)
        for name in expected {
            #expect(tree.node(nameBytes: name)?.nameBytes == name)
            var copy = tree
            #expect(copy.takeNode(nameBytes: name)?.nameBytes == name)
        }
        for missing in [[], [0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61], [0x00], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]] as [[UInt8]] where !names.contains(missing) {
            #expect(tree.node(nameBytes: missing) == nil)
        }
    }

    @Test func anOlderRepositorySkipsWhatItsFormatCannotStoreWithAWarning() async throws {
        try await withTemporaryDirectory { dir in
            try Self.makeTree(at: dir + "/src")
            #expect(mkfifo(dir + "/src/pipe", 0o600) == 0)
            var config = RepositoryConfig.new(compressionLevel: 3, chunker: TestRepository.smallChunks, packSize: 512 << 10)
            config.version = 2
            let storage = try StorageLocation.storage(for: dir + "/repo", create: true)
            let repo = try await Repository.create(storage: storage, password: TestRepository.password, config: config, kdf: .testing)
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(result.warnings.count == 4, "the Latin-1 file, the directory, the link and the FIFO: \(result.warnings)")
            #expect(result.warnings.allSatisfy { $0.contains("format version 2") })
            let root = try await repo.loadTree(result.snapshot.tree)
            let tree = try await repo.loadTree(root.nodes[0].subtree!)
            #expect(tree.nodes.map(\.name).sorted() == ["e\u{301}.txt", "\u{E9}.txt"].sorted())
            #expect(tree.nodes.allSatisfy { $0.rawName == nil && !$0.type.isSpecial })
        }
    }

    @Test func specialFilesAreRecordedNeverReadAndRecreated() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir + "/src", 0o755)
            #expect(mkfifo(dir + "/src/pipe", 0o640) == 0)
            // /dev/zero's numbers (1, 5): a backup that read it would never end.
            let zero: dev_t = 0x105
            let isRoot = geteuid() == 0
            if isRoot { #expect(mknod(dir + "/src/zero", S_IFCHR | 0o600, zero) == 0) }
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(result.warnings.isEmpty, "\(result.warnings)")
            let root = try await repo.loadTree(result.snapshot.tree)
            let tree = try await repo.loadTree(root.nodes[0].subtree!)
            #expect(tree.node(named: "pipe")?.type == .fifo)
            #expect(tree.node(named: "pipe")?.content == nil)
            if isRoot {
                #expect(tree.node(named: "zero")?.type == .characterDevice)
                #expect(tree.node(named: "zero")?.rdev == UInt64(zero))
            }

            let report = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            var st = stat()
            #expect(lstat(dir + "/out/src/pipe", &st) == 0 && st.st_mode & S_IFMT == S_IFIFO && st.st_mode & 0o7777 == 0o640)
            if isRoot {
                #expect(lstat(dir + "/out/src/zero", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == zero)
            }
        }
    }

    /// The check between choosing an entry (`lstat`) and reading it (`open` + `fstat`): what is
    /// swapped in between is refused, not followed or read.
    @Test(arguments: ["symlink", "fifo", "another file"])
    func anEntrySwappedAfterItWasChosenIsNotRead(replacement: String) throws {
        try withTemporaryDirectoryNonAsync { dir in
            mkdir(dir + "/src", 0o755)
            try "secret".write(toFile: dir + "/secret", atomically: false, encoding: .utf8)
            try "ordinary".write(toFile: dir + "/src/file", atomically: false, encoding: .utf8)
            let parent = try DirectoryHandle(path: dir + "/src")
            let location = EntryLocation(directory: parent, name: Array("file".utf8))
            let chosen = FileStatus(try location.status())
            #expect(chosen.kind == .file)

            // The replacement is made before the original goes, so that it cannot reuse its inode.
            switch replacement {
            case "symlink": symlink(dir + "/secret", dir + "/src/other")
            case "fifo": mkfifo(dir + "/src/other", 0o600)
            default: try "replaced".write(toFile: dir + "/src/other", atomically: false, encoding: .utf8)
            }
            rename(dir + "/src/other", dir + "/src/file")
            #expect(throws: BunkerError.self) { _ = try location.openFile(expecting: chosen) }
        }
    }

    @Test func aDirectorySwappedForASymlinkAfterItWasChosenIsNotListed() throws {
        try withTemporaryDirectoryNonAsync { dir in
            mkdir(dir + "/src", 0o755)
            mkdir(dir + "/src/sub", 0o755)
            mkdir(dir + "/outside", 0o755)
            let parent = try DirectoryHandle(path: dir + "/src")
            let location = EntryLocation(directory: parent, name: Array("sub".utf8))
            let chosen = FileStatus(try location.status())
            rmdir(dir + "/src/sub")
            symlink(dir + "/outside", dir + "/src/sub")
            #expect(throws: BunkerError.self) { _ = try location.openDirectory(expecting: chosen) }
        }
    }
}

/// A temporary directory for synchronous tests.
func withTemporaryDirectoryNonAsync(_ body: (String) throws -> Void) throws {
    let dir = NSTemporaryDirectory() + "bunker-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { removeTree(dir) }
    try body(dir)
}
