import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// A file tree streamed in as entries (as a tar archive is read) is stored as a tree.
@Suite struct EntryStreamTests {
    /// Entries from memory, in the order given.
    final class Entries: EntryStream {
        let entries: Mutex<[(StreamedEntry, Data?)]>
        let failure: String?

        init(_ entries: [(StreamedEntry, Data?)], failure: String? = nil) {
            self.entries = Mutex(entries)
            self.failure = failure
        }

        func nextEntry() async throws -> (StreamedEntry, (any ByteStream)?)? {
            guard let (entry, data) = entries.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { return nil }
            return (entry, data.map { Bytes($0) as any ByteStream })
        }

        func finish() async throws {
            if let failure { throw BunkerError(.sourceIO, failure) }
        }
    }

    final class Bytes: ByteStream {
        let data: Data
        let offset = Mutex(0)

        init(_ data: Data) {
            self.data = data
        }

        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            offset.withLock { offset in
                let n = min(buffer.count, data.count - offset)
                data.copyBytes(to: buffer.bindMemory(to: UInt8.self), from: offset..<offset + n)
                offset += n
                return n
            }
        }

        func finish() throws {}
    }

    static func entry(_ path: String, _ type: Node.Kind, pageSize: Int? = nil, link: String? = nil) -> StreamedEntry {
        StreamedEntry(path: path.split(separator: "/").map(String.init), type: type, mode: type == .directory ? 0o700 : 0o600,
                      mtimeNanoseconds: 1_700_000_000_000_000_000, uid: 70, gid: 70, linkTarget: link, pageSize: pageSize)
    }

    @Test func storesTheTreeWithImpliedDirectoriesAndPages() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let pages = Data((0..<(5 * 8192)).map { UInt8(truncatingIfNeeded: $0 / 8192 + $0 % 7) })
            let stream = Entries([
                // A file before its directory's entry, a directory only implied, a symlink.
                (Self.entry("base/1/1259", .file, pageSize: 8192), pages),
                (Self.entry("base", .directory), nil),
                (Self.entry("PG_VERSION", .file), Data("15\n".utf8)),
                (Self.entry("pg_tblspc/16400", .symlink, link: "/srv/tablespace"), nil),
            ])
            let request = BackupRequest(items: [.entries(stream, name: "clinic")], paths: ["clinic"])
            let result = try await Archiver(repository: repo, request: request).run()
            let root = try await repo.loadTree(result.snapshot.tree)
            let clinic = try #require(root.node(named: "clinic"))
            let top = try await repo.loadTree(#require(clinic.subtree))
            #expect(top.nodes.map(\.name) == ["PG_VERSION", "base", "pg_tblspc"])
            let base = try #require(top.node(named: "base"))
            #expect(base.mode == 0o700 && base.uid == 70, "the directory's own entry sets its node")
            let baseTree = try await repo.loadTree(#require(base.subtree))
            let one = try await repo.loadTree(#require(baseTree.node(named: "1")?.subtree))
            let relation = try #require(one.node(named: "1259"))
            #expect(relation.size == UInt64(pages.count))
            #expect(relation.content?.count == 5, "cut at its 8 KiB pages")
            let tablespaces = try await repo.loadTree(#require(top.node(named: "pg_tblspc")?.subtree))
            #expect(tablespaces.node(named: "16400")?.linkTarget == "/srv/tablespace")
        }
    }

    @Test func aFailingProducerWritesNoSnapshot() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let stream = Entries([(Self.entry("PG_VERSION", .file), Data("15\n".utf8))], failure: "pg_basebackup failed")
            let request = BackupRequest(items: [.entries(stream, name: "clinic")], paths: ["clinic"])
            await #expect(throws: BunkerError.self) { _ = try await Archiver(repository: repo, request: request).run() }
            #expect(try await repo.snapshots().isEmpty)
        }
    }

    @Test func refusesANameThatLeavesTheTree() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let stream = Entries([(Self.entry("base/../../etc/passwd", .file), Data("x".utf8))])
            let request = BackupRequest(items: [.entries(stream, name: "clinic")], paths: ["clinic"])
            await #expect(throws: BunkerError.self) { _ = try await Archiver(repository: repo, request: request).run() }
        }
    }
}
