@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// A restore from an object store reads its folders' listings for its plan a level at a time,
/// those that lie close together in a pack with one request (``Repository/loadTrees(_:)``).
@Suite struct PlanListingTests {
    /// 40 folders of 3 small files each, in 4 groups: listings on three levels.
    private func makeSource(in dir: String) throws -> String {
        try TreeGenerator.makeFolderTree(at: dir + "/src", groups: 4, folders: 10, files: 3)
        return dir + "/src"
    }

    @Test func aPlanReadsNeighbouringListingsWithOneRequest() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            let (packs, listings) = TestRepository.listingPacks(of: repo)
            #expect(listings >= 45, "40 folders, 4 groups, src and the root: \(listings)")

            let (remote, counting) = try await TestRepository.openCounting(at: dir + "/repo")
            let report = try await Restorer(loader: remote).restore(tree: snapshot.tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(report.filesRestored == 120)
            #expect(compareTrees(source, dir + "/out/src").isEmpty)
            // One request per level and listing pack at most (the snapshot's root is read alone,
            // before the plan): far fewer than one per folder.
            let listingReads = counting.packRanges.filter { packs.contains($0.pack) }.count
            #expect(listingReads <= 1 + 4 * packs.count, "\(listingReads) requests for \(listings) listings in \(packs.count) packs")
        }
    }

    @Test func aDamagedListingIsLeftOutAndItsNeighboursAreStillRead() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            let src = try #require(try await repo.loadTree(snapshot.tree).nodes.first { $0.name == "src" }?.subtree)
            let groups = try await repo.loadTree(src).nodes.compactMap(\.subtree)
            #expect(groups.count == 4)
            // Flip a bit in the second group's listing.
            try damageBlob(groups[1], of: repo, at: dir + "/repo")

            let (remote, _) = try await TestRepository.openCounting(at: dir + "/repo")
            let trees = await remote.loadTrees(groups)
            #expect(trees[groups[1]] == nil)
            #expect(Set(trees.keys) == Set([groups[0], groups[2], groups[3]]))
            for id in [groups[0], groups[2], groups[3]] {
                #expect(trees[id]?.nodes.count == 10)
            }

            // The restore records the damaged folder and restores the other three groups.
            let report = try await Restorer(loader: remote).restore(tree: snapshot.tree, to: dir + "/out")
            #expect(report.filesRestored == 90)
            #expect(report.failures.map(\.path) == ["src/g1"], "\(report.failures)")
        }
    }
}
