import BunkerCore
@testable import BunkerService
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// The snapshot browser's service calls: a folder at a time, a file streamed and checked, chosen
/// paths restored only into a new or empty directory.
@Suite struct SnapshotBrowseTests {
    func service(_ dir: String) async throws -> BunkerService {
        try FileManager.default.createDirectory(atPath: dir + "/studies/2025", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/studies/archive", withIntermediateDirectories: true)
        for name in ["b.txt", "a.txt", "c.txt"] { try Data(name.utf8).write(to: URL(fileURLWithPath: dir + "/studies/2025/" + name)) }
        var generator = SystemRandomNumberGenerator()
        try Data((0..<(3 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: dir + "/studies/2025/scan.dcm"))
        return try await makeService(in: dir, sources: """
            [[source]]
            name = "studies"
            kind = "files"
            path = "\(dir)/studies"
            """)
    }

    @Test func aFolderListsFoldersFirstThenFilesByNameInPages() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await service(dir)
            let id = try await service.backup(SourceBackupRequest(type: .files)).snapshotID.hex
            let top = try await service.listFolder(snapshot: id, path: "studies")
            #expect(top.entries.map(\.name) == ["2025", "archive"])
            #expect(top.entries.allSatisfy { $0.type == "dir" })
            let first = try await service.listFolder(snapshot: id, path: "/studies//2025/", offset: 0, limit: 3)
            #expect(first.path == "studies/2025")
            #expect(first.entries.map(\.name) == ["a.txt", "b.txt", "c.txt"])
            #expect(first.total == 4 && first.nextOffset == 3)
            let last = try await service.listFolder(snapshot: id, path: "studies/2025", offset: 3, limit: 3)
            #expect(last.entries.map(\.name) == ["scan.dcm"] && last.nextOffset == nil)
            #expect(last.entries[0].size == 3 << 20 && last.entries[0].sha256?.count == 64)
        }
    }

    /// Sorted folders are kept by tree id: a folder asked again (its next page) is not sorted
    /// again, and a folder that changed is a new tree, never an old listing.
    @Test func sortedFoldersAreKeptByTreeAndNeverStale() async throws {
        let cache = SortedFolderCache(limit: 2)
        let made = Mutex(0)
        func nodes(_ id: ID, _ names: [String]) async -> [String] {
            let folder = await cache.sorted(id) {
                made.withLock { $0 += 1 }
                return SortedFolder(TreeOutline(nodes: names.map { Node(name: $0, type: .file, mode: 0o644, mtimeNanoseconds: 0, uid: 0, gid: 0) }))
            }
            return folder.order.map { folder.outline.node(at: $0).name }
        }
        let a = ID.sha256(of: Data("a".utf8)), b = ID.sha256(of: Data("b".utf8)), c = ID.sha256(of: Data("c".utf8))
        #expect(await nodes(a, ["x"]) == ["x"])
        #expect(await nodes(a, ["ignored"]) == ["x"] && made.withLock { $0 } == 1)
        _ = await nodes(b, ["y"])
        _ = await nodes(c, ["z"])  // the third: a goes
        #expect(await nodes(a, ["x2"]) == ["x2"] && made.withLock { $0 } == 4)

        try await withTemporaryDirectory { dir in
            let service = try await service(dir)
            let first = try await service.backup(SourceBackupRequest(type: .files)).snapshotID.hex
            #expect(try await service.listFolder(snapshot: first, path: "studies/2025").entries.map(\.name) == ["a.txt", "b.txt", "c.txt", "scan.dcm"])
            try FileManager.default.moveItem(atPath: dir + "/studies/2025/a.txt", toPath: dir + "/studies/2025/d.txt")
            let second = try await service.backup(SourceBackupRequest(type: .files)).snapshotID.hex
            #expect(try await service.listFolder(snapshot: second, path: "studies/2025").entries.map(\.name) == ["b.txt", "c.txt", "d.txt", "scan.dcm"])
            #expect(try await service.listFolder(snapshot: first, path: "studies/2025", offset: 1, limit: 1).entries.map(\.name) == ["b.txt"])
        }
    }

    @Test(arguments: ["studies/../etc", "..", "studies/2025/a.txt", "studies/nothing"])
    func badFoldersAreRefusedWithTheReason(_ path: String) async throws {
        try await withTemporaryDirectory { dir in
            let service = try await service(dir)
            let id = try await service.backup(SourceBackupRequest(type: .files)).snapshotID.hex
            let error = await #expect(throws: BunkerError.self) { try await service.listFolder(snapshot: id, path: path) }
            let expected: BunkerError.Code = path.hasSuffix("nothing") ? .objectNotFound : .invalidArgument
            #expect(error?.code == expected, "\(error?.message ?? "")")
        }
    }

    @Test func aFileIsStreamedWhole() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await service(dir)
            let id = try await service.backup(SourceBackupRequest(type: .files)).snapshotID.hex
            let received = Mutex(Data())
            try await service.readFile(snapshot: id, path: "studies/2025/scan.dcm", by: .localUser()) { data in received.withLock { $0.append(data) } }
            #expect(received.withLock { $0 } == FileManager.default.contents(atPath: dir + "/studies/2025/scan.dcm"))
        }
    }

    @Test func aDamagedFileIsNeverHandedOutAsWhole() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await service(dir)
            let id = try await service.backup(SourceBackupRequest(type: .files)).snapshotID.hex
            // Flip a byte inside every chunk of the file itself (a pack may hold other files'
            // chunks, whose damage would leave this file whole), and read the packs back to be
            // sure the damage is on disk before the download.
            var tree = try await service.repository.loadTree(try await service.repository.findSnapshot(id).snapshot.tree)
            for name in ["studies", "2025"] {
                tree = try await service.repository.loadTree(try #require(tree.node(named: name)?.subtree))
            }
            let chunks = try #require(tree.node(named: "scan.dcm")?.content)
            for chunk in chunks {
                let location = try #require(service.repository.index.lookup(chunk))
                let path = dir + "/repo/data/" + String(location.pack.hex.prefix(2)) + "/" + location.pack.hex
                let at = Int(location.blob.offset) + Int(location.blob.length) / 2
                var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                let original = bytes[at]
                bytes[at] ^= 0xFF
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
                try bytes.write(to: URL(fileURLWithPath: path))
                try #require(try Data(contentsOf: URL(fileURLWithPath: path))[at] == original ^ 0xFF, "the damage is on disk")
            }
            // The damage is found by a service started afresh, as after a restart. The service that
            // made the backup worked out its ZIP checksum right after it, reading every file, and
            // keeps the last bundles it opened (authenticated plaintext) in memory: a download of
            // a file whose damaged chunks sat in those bundles was served, whole and correct, from
            // there, which made this test fail now and then.
            let restarted = BunkerService(configuration: service.configuration, repository: try await TestRepository.open(at: dir + "/repo"))
            await #expect(throws: BunkerError.self) {
                try await restarted.readFile(snapshot: id, path: "studies/2025/scan.dcm", by: .localUser()) { _ in }
            }
            let ends = try restarted.catalog().auditRecords(AuditFilter()).filter { $0.action == "export" && $0.outcome != .started }
            #expect(ends.last?.outcome == .failure, "the failed download is audited as failed")
        }
    }

    /// `bunker serve` reads the index when it starts; a backup another process (the CLI, cron)
    /// makes afterwards still opens in the browser, and its files download.
    @Test func aBackupAnotherProcessMadeOpensInTheBrowser() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await service(dir)
            _ = try await server.backup(SourceBackupRequest(type: .files))
            try Data("fresh".utf8).write(to: URL(fileURLWithPath: dir + "/studies/archive/fresh.txt"))
            let other = BunkerService(configuration: server.configuration, repository: try await TestRepository.open(at: dir + "/repo"))
            let id = try await other.backup(SourceBackupRequest(type: .files)).snapshotID.hex

            let folder = try await server.listFolder(snapshot: id, path: "studies/archive")
            #expect(folder.entries.map(\.name) == ["fresh.txt"])
            let received = Mutex(Data())
            try await server.readFile(snapshot: String(id.prefix(8)), path: "studies/archive/fresh.txt", by: .localUser()) { data in
                received.withLock { $0.append(data) }
            }
            #expect(received.withLock { $0 } == Data("fresh".utf8))
        }
    }

    /// A name that is not UTF-8 is listed in a readable form (U+FFFD for the bad bytes); the
    /// file downloads by that form, and a form two names share is refused, not guessed.
    @Test func aFileWhoseNameIsNotUTF8DownloadsByTheNameItIsListedAs() async throws {
        try await withTemporaryDirectory { dir in
            func write(_ name: [UInt8], in folder: String, _ text: String) throws {
                let path = Array((dir + "/studies/" + folder + "/").utf8) + name + [0]
                let fd = path.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_CREAT | O_WRONLY, 0o644) }
                #expect(fd >= 0)
                _ = text.withCString { Foundation.write(fd, $0, strlen($0)) }
                close(fd)
            }
            let server = try await service(dir)
            try FileManager.default.createDirectory(atPath: dir + "/studies/twins", withIntermediateDirectories: true)
            try write(Array("bad-".utf8) + [0xFF, 0xFE] + Array("-name.txt".utf8), in: "archive", "odd")
            try write(Array("x".utf8) + [0xFF], in: "twins", "one")
            try write(Array("x".utf8) + [0xFE], in: "twins", "two")
            let id = try await server.backup(SourceBackupRequest(type: .files)).snapshotID.hex

            let listed = try await server.listFolder(snapshot: id, path: "studies/archive").entries.map(\.name)
            #expect(listed == ["bad-\u{FFFD}\u{FFFD}-name.txt"])
            let received = Mutex(Data())
            try await server.readFile(snapshot: id, path: "studies/archive/" + listed[0], by: .localUser()) { data in
                received.withLock { $0.append(data) }
            }
            #expect(received.withLock { $0 } == Data("odd".utf8))

            let twin = try #require(try await server.listFolder(snapshot: id, path: "studies/twins").entries.first?.name)
            let ambiguous = await #expect(throws: BunkerError.self) {
                try await server.readFile(snapshot: id, path: "studies/twins/" + twin, by: .localUser()) { _ in }
            }
            #expect(ambiguous?.message.contains("Several entries") == true, "\(ambiguous?.message ?? "")")
        }
    }

    @Test func chosenPathsAreRestoredOnlyIntoANewOrEmptyDirectory() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await service(dir)
            let id = try await service.backup(SourceBackupRequest(type: .files)).snapshotID.hex
            let occupied = dir + "/occupied"
            try FileManager.default.createDirectory(atPath: occupied, withIntermediateDirectories: true)
            try Data("keep".utf8).write(to: URL(fileURLWithPath: occupied + "/keep.txt"))
            let refused = await #expect(throws: BunkerError.self) {
                try await service.restoreFiles(snapshot: id, paths: ["studies/2025/a.txt"], into: occupied, by: .localUser(), reason: "test")
            }
            #expect(refused?.code == .objectExists)
            #expect(FileManager.default.contents(atPath: occupied + "/keep.txt") == Data("keep".utf8))
            let relative = await #expect(throws: BunkerError.self) {
                try await service.restoreFiles(snapshot: id, paths: ["studies/2025/a.txt"], into: "restored", by: .localUser(), reason: "test")
            }
            #expect(relative?.code == .invalidArgument)

            // Never into the live source, the repository or the data directory, nor through a
            // link to one of them; nothing is created there.
            try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/studies")
            for inside in [dir + "/studies/restored", dir + "/link/restored", dir + "/repo/data/restored", dir + "/repo", dir + "/data/restored"] {
                let error = await #expect(throws: BunkerError.self) {
                    try await service.restoreFiles(snapshot: id, paths: ["studies/2025/a.txt"], into: inside, by: .localUser(), reason: "test")
                }
                #expect(error?.code == .invalidArgument, "\(inside)")
                #expect(error?.message.contains("inside") == true, "\(error?.message ?? "")")
                #expect(!FileManager.default.fileExists(atPath: inside + "/studies"), "\(inside)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/studies/restored"))

            // A path the snapshot does not hold is refused, and leaves no directory behind.
            let unmatched = await #expect(throws: BunkerError.self) {
                try await service.restoreFiles(snapshot: id, paths: ["nope/x"], into: dir + "/nothing", by: .localUser(), reason: "test")
            }
            #expect(unmatched?.message.contains("No path in the snapshot matches") == true, "\(unmatched?.message ?? "")")
            #expect(!FileManager.default.fileExists(atPath: dir + "/nothing"))

            let report = try await service.restoreFiles(snapshot: id, paths: ["studies/2025/a.txt"], into: dir + "/new", by: .localUser(), reason: "test")
            #expect(report.filesRestored == 1)
            #expect(FileManager.default.contents(atPath: dir + "/new/studies/2025/a.txt") == Data("a.txt".utf8))
            #expect(!FileManager.default.fileExists(atPath: dir + "/new/studies/2025/b.txt"))
        }
    }
}
