@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// Verify, prune and copy walk a snapshot's folders reading many listings at once
/// (``Repository/walkListings(from:in:listing:visit:)``): from an object store, one request per
/// folder waited a round trip each, one after the other.
@Suite struct ListingWalkTests {
    /// `groups` folders of `folders` folders of 2 small files each.
    private func makeSource(in dir: String, groups: Int = 4, folders: Int = 10) throws -> String {
        try TreeGenerator.makeFolderTree(at: dir + "/src", groups: groups, folders: folders, files: 2)
        return dir + "/src"
    }

    private func listingReads(_ counting: LoadCountingStorage, _ packs: Set<String>) -> Int {
        counting.packRanges.filter { packs.contains($0.pack) }.count
    }

    @Test func verifyPruneAndCopyReadNeighbouringListingsTogether() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshotID
            let (packs, listings) = TestRepository.listingPacks(of: repo)
            #expect(listings >= 45, "40 folders, 4 groups, src and the root: \(listings)")
            // Four levels below the snapshot's root, each read with a request per listing pack
            // at most; one request per listing would be 46.
            let bound = 5 * packs.count

            let (remote, counting) = try await TestRepository.openCounting(at: dir + "/repo")
            let whole = try await Checker(repository: remote).check(readData: false)
            #expect(whole.errors.isEmpty, "\(whole.errors)")
            #expect(listingReads(counting, packs) <= bound, "verify: \(listingReads(counting, packs)) requests for \(listings) listings in \(packs.count) packs")

            let (remote2, counting2) = try await TestRepository.openCounting(at: dir + "/repo")
            let one = try await Checker(repository: remote2).check(snapshot: snapshot)
            #expect(one.errors.isEmpty, "\(one.errors)")
            #expect(one.blobs == whole.blobs)
            #expect(listingReads(counting2, packs) <= bound, "verify of one snapshot: \(listingReads(counting2, packs)) requests")

            let (remote3, counting3) = try await TestRepository.openCounting(at: dir + "/repo")
            var options = PruneOptions()
            options.dryRun = true
            let pruned = try await Pruner(repository: remote3, options: options).run()
            #expect(pruned.snapshots == 1)
            #expect(listingReads(counting3, packs) <= bound, "prune: \(listingReads(counting3, packs)) requests")

            let (remote4, counting4) = try await TestRepository.openCounting(at: dir + "/repo")
            let destination = try await Repository.create(
                storage: try StorageLocation.storage(for: dir + "/copy", create: true), password: TestRepository.password,
                config: .new(compressionLevel: 3, chunker: TestRepository.smallChunks, packSize: 512 << 10), kdf: .testing, sharing: remote4.key)
            let copied = try await Copier(from: remote4, to: destination).copy([snapshot])
            #expect(copied.sharedKeys && copied.copied.count == 1)
            // The copy reads each listing pack once more, whole, to ship it.
            #expect(listingReads(counting4, packs) <= bound + packs.count, "copy: \(listingReads(counting4, packs)) requests")
            let copy = try await Checker(repository: destination).check(readData: true)
            #expect(copy.errors.isEmpty && copy.snapshots == 1, "\(copy.errors)")
            let restored = try await Restorer(loader: destination).restore(tree: try await destination.loadSnapshot(try #require(ID(hex: copied.copied[0].destination))).tree, to: dir + "/out")
            #expect(restored.failures.isEmpty)
            #expect(compareTrees(source, dir + "/out/src").isEmpty)
        }
    }

    /// A walk wider than one batch visits every listing once, and skips what `listing` skips.
    @Test func aWalkWiderThanOneBatchVisitsEachListingOnce() async throws {
        try await withTemporaryDirectory { dir in
            let width = Repository.listingBatch + 44
            let source = try makeSource(in: dir, groups: 1, folders: width)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            var asked: [String] = []
            var visited: [String: Int] = [:]
            var files = 0
            try await repo.walkListings(from: [(id: snapshot.tree, path: "")]) { item in
                asked.append(item.path)
                return item.path.hasSuffix("/f7") ? nil : item.id
            } visit: { item, loaded in
                visited[item.path, default: 0] += 1
                var under: [(id: ID, path: String)] = []
                for node in try loaded.get().nodes {
                    if let sub = node.subtree { under.append((sub, item.path + "/" + node.name)) }
                    if node.type == .file { files += 1 }
                }
                return under
            }
            // The root, src, g0 and its folders; f7 skipped.
            #expect(asked.count == 3 + width)
            #expect(Set(asked).count == asked.count)
            #expect(visited.count == 3 + width - 1 && visited.values.allSatisfy { $0 == 1 })
            #expect(visited["/src/g0/f7"] == nil && visited["/src/g0/f8"] == 1)
            #expect(files == 2 * (width - 1))
        }
    }

    /// A damaged listing fails alone: verify names that folder and still walks the others, and
    /// prune refuses to run on its strength, naming it.
    @Test func aDamagedListingIsReportedAloneWhileItsNeighboursAreWalked() async throws {
        try await withTemporaryDirectory { dir in
            let source = try makeSource(in: dir)
            let repo = try await TestRepository.create(at: dir + "/repo")
            let snapshot = try await TestRepository.backup(repo, [source]).snapshot
            let src = try #require(try await repo.loadTree(snapshot.tree).nodes.first { $0.name == "src" }?.subtree)
            let group = try #require(try await repo.loadTree(src).nodes.first { $0.name == "g2" }?.subtree)
            let id = try #require(try await repo.snapshots().first?.id)
            let before = try await Checker(repository: repo).check(snapshot: id)
            #expect(before.errors.isEmpty)
            try damageBlob(group, of: repo, at: dir + "/repo")

            let (remote, _) = try await TestRepository.openCounting(at: dir + "/repo")
            let report = try await Checker(repository: remote).check(readData: false)
            let damaged = report.errors.filter { $0.kind == "damaged_tree" }
            #expect(damaged.count == 1 && report.errors.count == 1, "\(report.errors)")
            #expect(damaged.first?.object == "tree \(group.hex)")
            #expect(damaged.first?.affected.map(\.path) == ["/src/g2"])
            // Everything but g2's 10 folders and 20 files was walked: their blobs are counted.
            let (remote1, _) = try await TestRepository.openCounting(at: dir + "/repo")
            let after = try await Checker(repository: remote1).check(snapshot: id)
            // (It reads the packs too, and finds the one holding the listing damaged.)
            let afterTrees = after.errors.filter { $0.kind == "damaged_tree" }
            #expect(afterTrees.count == 1 && afterTrees.first?.affected.map(\.path) == ["/src/g2"], "\(after.errors)")
            #expect(after.blobs == before.blobs - 30, "\(after.blobs) of \(before.blobs)")

            let (remote2, _) = try await TestRepository.openCounting(at: dir + "/repo")
            var options = PruneOptions()
            options.dryRun = true
            await #expect(throws: BunkerError.self) { try await Pruner(repository: remote2, options: options).run() }
            do {
                _ = try await Pruner(repository: remote2, options: options).run()
            } catch {
                #expect("\(error)".contains(group.short), "\(error)")
            }
        }
    }
}
