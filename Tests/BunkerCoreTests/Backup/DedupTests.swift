import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct DedupTests {
    @Test func unchangedDataAddsNoDataObjects() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/src"])
            let packs = try await repo.storage.list(.pack).count
            // Force every file to be read again: dedup, not the parent shortcut, must do the work.
            var request = BackupRequest(paths: [dir + "/src"])
            request.parent = .none
            let again = try await Archiver(repository: repo, request: request).run()
            #expect(again.snapshot.summary?.blobsAdded == 0)
            #expect(try await repo.storage.list(.pack).count == packs)
        }
    }

    @Test func identicalFilesAreStoredOnce() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/src/a", size: 1 << 20, seed: 5)
            try FileManager.default.copyItem(atPath: dir + "/src/a", toPath: dir + "/src/b")
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            let added = try #require(result.snapshot.summary?.dataAdded)
            #expect(added < (1 << 20) + 64 << 10, "two copies of 1 MiB add about 1 MiB (\(added))")
        }
    }

    @Test func oneByteChangeInALargeFileAddsAboutOneChunk() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            let file = dir + "/src/big.bin"
            try TreeGenerator.writeRandomFile(file, size: 8 << 20, seed: 11)
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/src"])
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: file))
            try handle.seek(toOffset: 5_000_000)
            let old = try handle.read(upToCount: 1)!
            try handle.seek(toOffset: 5_000_000)
            try handle.write(contentsOf: Data([old[0] ^ 0xFF]))
            try handle.close()
            let second = try await TestRepository.backup(repo, [dir + "/src"])
            let summary = try #require(second.snapshot.summary)
            // One data chunk (at most 256 KiB here) plus the two trees on the path to it.
            #expect(summary.blobsAdded <= 4, "added \(summary.blobsAdded) blobs")
            #expect(summary.dataAdded < 300 << 10, "added \(summary.dataAdded) bytes")
        }
    }
}

@Suite struct DatabaseChunkingTests {
    @Test func sqliteFilesAreCutAtPageBoundaries() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/db", withIntermediateDirectories: true)
            let db = dir + "/db/app.db"
            try runSQLite(db, """
                PRAGMA page_size=4096;
                CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40000)
                INSERT INTO notes SELECT i, printf('note %d %s', i, hex(randomblob(60))) FROM n;
                """)
            let size = try #require(try FileManager.default.attributesOfItem(atPath: db)[.size] as? Int)
            #expect(size > 4 << 20)
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/db"])
            // Ten scattered single-row updates dirty at most ten pages.
            try runSQLite(db, "UPDATE notes SET body = 'changed' WHERE id IN (5, 4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000, 39000);")
            let second = try await TestRepository.backup(repo, [dir + "/db"])
            let summary = try #require(second.snapshot.summary)
            #expect(summary.dataAdded <= 11 * (64 << 10) + 4096, "added \(summary.dataAdded) bytes")
            _ = try await Restorer(loader: repo).restore(tree: second.snapshot.tree, to: dir + "/out")
            #expect(FileManager.default.contents(atPath: dir + "/out/db/app.db") == FileManager.default.contents(atPath: db))
        }
    }
}

/// A directory whose entries are all as the parent snapshot has them keeps the listing stored
/// then; any difference an entry's node records (not only its content) stores a new one.
@Suite struct ParentListingTests {
    private static func listing(_ repo: Repository, _ result: BackupResult, _ path: [String]) async throws -> ID? {
        var tree = try await repo.loadTree(result.snapshot.tree)
        var id: ID? = result.snapshot.tree
        for name in path {
            id = tree.node(named: name)?.subtree
            guard let id else { return nil }
            tree = try await repo.loadTree(id)
        }
        return id
    }

    @Test func aDirectoryKeepsItsListingOnlyWhenEveryEntryIsAsBefore() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            let first = try await TestRepository.backup(repo, [dir + "/src"])
            let docs = ["src", "docs"], patient = ["src", "studies", "2024", "patient-001"], studies2025 = ["src", "studies", "2025"]

            let same = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(same.snapshot.tree == first.snapshot.tree)
            #expect(same.snapshot.summary?.blobsAdded == 0)

            // A mode changed with the mtime kept: the file is not read again, but its node
            // differs, and so do the listings on the path to it; the others are kept.
            let note = dir + "/src/studies/2024/patient-001/note-3.txt"
            var status = stat()
            #expect(stat(note, &status) == 0)
            #expect(chmod(note, 0o640) == 0)
            let times = [status.st_atim, status.st_mtim]
            #expect(utimensat(AT_FDCWD, note, times, 0) == 0)
            let chmodded = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(chmodded.snapshot.summary?.filesUnmodified == same.snapshot.summary?.filesUnmodified)
            #expect(try await Self.listing(repo, chmodded, patient) != Self.listing(repo, first, patient))
            #expect(chmodded.snapshot.tree != first.snapshot.tree)
            #expect(try await Self.listing(repo, chmodded, docs) == Self.listing(repo, first, docs))

            // A file removed: every remaining entry is as before, yet the listing is new.
            try FileManager.default.removeItem(atPath: dir + "/src/studies/2025/small-4.bin")
            let removed = try await TestRepository.backup(repo, [dir + "/src"])
            let newListing = try #require(try await Self.listing(repo, removed, studies2025))
            #expect(newListing != (try await Self.listing(repo, first, studies2025)))
            #expect(try await repo.loadTree(newListing).node(named: "small-4.bin") == nil)
            #expect(try await Self.listing(repo, removed, docs) == Self.listing(repo, first, docs))

            // A changed file is read again and its listing stored anew; it restores as it is now.
            try Data("changed".utf8).write(to: URL(fileURLWithPath: dir + "/src/docs/log.csv"))
            let changed = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(try await Self.listing(repo, changed, docs) != Self.listing(repo, first, docs))
            #expect(try await Self.listing(repo, changed, patient) == Self.listing(repo, chmodded, patient))
            _ = try await Restorer(loader: repo).restore(tree: changed.snapshot.tree, to: dir + "/out")
            #expect(FileManager.default.contents(atPath: dir + "/out/src/docs/log.csv") == Data("changed".utf8))
            let mode = try FileManager.default.attributesOfItem(atPath: dir + "/out/src/studies/2024/patient-001/note-3.txt")[.posixPermissions] as? Int
            #expect(mode == 0o640)
        }
    }
}
