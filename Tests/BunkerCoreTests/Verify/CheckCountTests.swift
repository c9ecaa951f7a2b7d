import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// What `verify` counts, now that it no longer holds every pack's blob list at once.
@Suite struct CheckCountTests {
    private static func indexFiles(_ dir: String) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/index"))
    }

    @Test func verifyCountsTheBlobsOfTheIndexFilesOnStorageAndReadsEachOfTheirPacks() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/first")
            try FileManager.default.createDirectory(atPath: dir + "/second", withIntermediateDirectories: true)
            try TreeGenerator.writeRandomFile(dir + "/second/scan.bin", size: 3 << 20, seed: 41)
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/first"])
            let firstFiles = try Self.indexFiles(dir)
            try await TestRepository.backup(repo, [dir + "/first", dir + "/second"])
            let secondFiles = try Self.indexFiles(dir).subtracting(firstFiles)
            #expect(!secondFiles.isEmpty)

            let fresh = try await TestRepository.open(at: dir + "/repo")
            let whole = try await Checker(repository: fresh).check(readData: true)
            #expect(whole.ok)
            #expect(whole.blobs == fresh.index.count)
            #expect(whole.packs == fresh.index.packIDs.count && whole.packsRead == whole.packs)
            #expect(whole.indexFiles == firstFiles.count + secondFiles.count)

            // Another process drops the second backup's index files; `fresh` still knows their
            // blobs, so its own count is no longer what the storage's index files name.
            for name in secondFiles { try FileManager.default.removeItem(atPath: dir + "/repo/index/" + name) }
            let reopened = try await TestRepository.open(at: dir + "/repo")
            #expect(reopened.index.count < fresh.index.count)
            let after = try await Checker(repository: fresh).check(readData: true)
            #expect(after.blobs == reopened.index.count)
            #expect(after.packs == reopened.index.packIDs.count && after.packsRead == after.packs)
            #expect(after.indexFiles == firstFiles.count)
            #expect(after.warnings.contains { $0.contains("is not in any index") }, "the second backup's packs are named by no index file now")
        }
    }
}
