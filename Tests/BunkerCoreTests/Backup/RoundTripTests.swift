import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct RoundTripTests {
    @Test func restoredTreeMatchesSourceInBytesModesAndTimes() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            #expect(result.warnings.isEmpty)

            let reopened = try await TestRepository.open(at: dir + "/repo")
            let snapshot = try await reopened.loadSnapshot(result.snapshotID)
            let report = try await Restorer(loader: reopened).restore(tree: snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty)
            #expect(compareTrees(dir + "/src", dir + "/out/src") == [])
            #expect(FileManager.default.fileExists(atPath: dir + "/out/src/empty/nested-empty"))
        }
    }

    @Test func restoresChosenPathsOnly() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            let report = try await Restorer(loader: repo, includes: ["src/studies/2025", "/src/docs/log.csv"])
                .restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty)
            #expect(FileManager.default.fileExists(atPath: dir + "/out/src/studies/2025/image-b.dcm"))
            #expect(FileManager.default.fileExists(atPath: dir + "/out/src/docs/log.csv"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/src/docs/with space.txt"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/src/studies/2024"))
            #expect(compareTrees(dir + "/src/studies/2025", dir + "/out/src/studies/2025") == [])
        }
    }

    @Test func severalPathsInOneSnapshot() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/a", seed: 1, largeFileSize: 100_000)
            try FileManager.default.createDirectory(atPath: dir + "/b", withIntermediateDirectories: true)
            try Data("single".utf8).write(to: URL(fileURLWithPath: dir + "/b/file.txt"))
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/b/file.txt", dir + "/a"])
            _ = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(compareTrees(dir + "/a", dir + "/out/a") == [])
            #expect(FileManager.default.contents(atPath: dir + "/out/file.txt") == Data("single".utf8))
        }
    }

    @Test func excludedEntriesAreLeftOut() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 10_000)
            try FileManager.default.createDirectory(atPath: dir + "/src/cache", withIntermediateDirectories: true)
            try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/src/cache/entry"))
            try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/src/scratch.tmp"))
            let repo = try await TestRepository.create(at: dir + "/repo")
            var request = BackupRequest(paths: [dir + "/src"])
            request.excludes = ["*.tmp", "cache/", "studies/2024/*"]
            let result = try await Archiver(repository: repo, request: request).run()
            _ = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/src/cache"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/src/scratch.tmp"))
            #expect(FileManager.default.fileExists(atPath: dir + "/out/src/studies/2024"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/out/src/studies/2024").isEmpty)
            #expect(FileManager.default.fileExists(atPath: dir + "/out/src/studies/2025/image-b.dcm"))
        }
    }

    @Test func anAbsoluteExcludePatternMatchesTheWholePath() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 10_000)
            let repo = try await TestRepository.create(at: dir + "/repo")
            var request = BackupRequest(paths: [dir + "/src"])
            // A pattern that starts with / is matched against the absolute path; the same
            // pattern without the directory's own path matches nothing.
            request.excludes = [(dir as NSString).standardizingPath + "/src/studies/2025/*.dcm", "/studies/2024/*"]
            let result = try await Archiver(repository: repo, request: request).run()
            _ = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/src/studies/2025/image-b.dcm"))
            #expect(FileManager.default.fileExists(atPath: dir + "/out/src/studies/2025/small-0.bin"))
            #expect(try !FileManager.default.contentsOfDirectory(atPath: dir + "/out/src/studies/2024").isEmpty)
        }
    }

    @Test func incrementalBackupSkipsUnchangedFiles() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src")
            let repo = try await TestRepository.create(at: dir + "/repo")
            let first = try await TestRepository.backup(repo, [dir + "/src"])
            try Data("changed note".utf8).write(to: URL(fileURLWithPath: dir + "/src/studies/2024/patient-001/note-3.txt"))
            let second = try await TestRepository.backup(repo, [dir + "/src"])
            let summary = try #require(second.snapshot.summary)
            #expect(second.snapshot.parent == first.snapshotID)
            #expect(summary.filesChanged == 1)
            #expect(summary.filesNew == 0)
            #expect(summary.bytesRead == UInt64("changed note".utf8.count))
            #expect(summary.filesUnmodified == (first.snapshot.summary?.totalFiles ?? 0) - 1)
            _ = try await Restorer(loader: repo).restore(tree: second.snapshot.tree, to: dir + "/out")
            #expect(compareTrees(dir + "/src", dir + "/out/src", checkDirectoryTimes: false) == [])
        }
    }

    @Test func missingSourcePathIsAClearError() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            await #expect {
                try await TestRepository.backup(repo, [dir + "/nope"])
            } throws: { error in
                (error as? BunkerError)?.code == .invalidArgument && "\(error)".contains("/nope")
            }
            #expect(try await repo.snapshots().isEmpty)
        }
    }
}

@Suite struct RestoreSafetyTests {
    @Test func restoreDoesNotFollowASymlinkWhereADirectoryGoes() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src/inner", withIntermediateDirectories: true)
            try Data("payload".utf8).write(to: URL(fileURLWithPath: dir + "/src/inner/file"))
            let repo = try await TestRepository.create(at: dir + "/repo")
            let result = try await TestRepository.backup(repo, [dir + "/src"])
            try FileManager.default.createDirectory(atPath: dir + "/out/src", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
            symlink(dir + "/elsewhere", dir + "/out/src/inner")
            let report = try await Restorer(loader: repo).restore(tree: result.snapshot.tree, to: dir + "/out")
            #expect(report.failures.map(\.path) == ["src/inner"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/elsewhere").isEmpty)
        }
    }

    @Test func interruptedInitCanBeRetried() async throws {
        try await withTemporaryDirectory { dir in
            // What an init killed after writing its key, before its config, leaves behind.
            let storage = try StorageLocation.storage(for: dir + "/repo", create: true)
            try await storage.save(ObjectHandle(.key, String(repeating: "a", count: 64)), data: Data("{}".utf8))
            _ = try await TestRepository.create(at: dir + "/repo")
            let reopened = try await TestRepository.open(at: dir + "/repo")
            #expect(try await reopened.listKeys().count == 1)
        }
    }
}
