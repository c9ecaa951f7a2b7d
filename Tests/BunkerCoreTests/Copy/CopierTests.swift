@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct CopierTests {
    /// A copy between repositories that share key material keeps several packs on their way at
    /// once (one at a time, a copy between object stores waited for each download, then for each
    /// upload), and what arrives is whole: the destination verifies and restores every byte.
    @Test func packsTravelSeveralAtOnceAndArriveWhole() async throws {
        try await withTemporaryDirectory { dir in
            let source = dir + "/src"
            try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            for n in 0..<6 { try TreeGenerator.writeRandomFile(source + "/scan-\(n).dcm", size: 700 << 10, seed: UInt64(n)) }
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshotID
            let dataPacks = repo.index.blobsByPack().filter { $0.value.contains { $0.type == .data } }.count
            #expect(dataPacks >= 4, "\(dataPacks) data packs")

            let counting = LoadCountingStorage(try StorageLocation.storage(for: dir + "/repo"), delay: .milliseconds(50))
            let from = try await Repository.open(storage: counting, password: TestRepository.password)
            let to = try await Repository.create(
                storage: try StorageLocation.storage(for: dir + "/copy", create: true), password: TestRepository.password,
                config: .new(compressionLevel: 3, chunker: from.config.chunker, packSize: from.config.packSize), kdf: .testing, sharing: from.key)
            let report = try await Copier(from: from, to: to).copy([snapshot])
            #expect(report.copied.count == 1 && report.packsUnchanged == counting.packRanges.filter { $0.range == nil }.count, "\(report.packsUnchanged) packs unchanged, \(counting.packLoads)")
            #expect(counting.mostReadsAtOnce >= 2, "at most \(counting.mostReadsAtOnce) pack read at once")

            let check = try await Checker(repository: try await Repository.open(storage: StorageLocation.storage(for: dir + "/copy"), password: TestRepository.password)).check(readData: true)
            #expect(check.errors.isEmpty && check.snapshots == 1, "\(check.errors)")
            let copied = try #require(ID(hex: report.copied[0].destination))
            let restored = try await Restorer(loader: to).restore(tree: try await to.loadSnapshot(copied).tree, to: dir + "/out")
            #expect(restored.failures.isEmpty)
            #expect(compareTrees(source, dir + "/out/src").isEmpty)
        }
    }
}
