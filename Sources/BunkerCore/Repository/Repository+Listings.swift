import Foundation

/// Reading many directory listings at once, and walking a snapshot's folders that way.
///
/// From an object store every listing read on its own waits a round trip. A restore's plan read
/// each of the benchmark's 1,300 folders with a request of its own, and a verify, a copy or a
/// prune that walks a snapshot one listing at a time waits that many round trips in a row: a
/// few seconds on loopback, minutes across the internet for a repository of half a million
/// files. Listings a backup wrote together lie together in a pack, so most are read here with
/// a few requests, several at once.
extension Repository {
    /// How many listings waiting in a walk are read at once: enough to fill the requests an
    /// object store allows, few enough that the decoded listings held stay small beside the
    /// index.
    static let listingBatch = 256

    /// Listings that lie close together in a pack (as a backup writes a folder's subfolders) are
    /// read with one request (``loadBlobs(_:decompressor:)``), up to ``parallelReads`` requests
    /// at once. A listing that cannot be read is left out of the result.
    public func loadTrees(_ ids: [ID]) async -> [ID: Tree] {
        await loadTrees(ids, in: index).compactMapValues { try? $0.get() }
    }

    /// Reads the listings `ids`, found in `index` (prune reads through a pack map of its own), as
    /// ``loadTrees(_:)`` does, with each one's error for those that cannot be read: a run of
    /// listings read together that fails is read again listing by listing, so that only the
    /// damaged ones fail, each with the error ``loadTree(_:)`` gives it.
    func loadTrees(_ ids: [ID], in index: MasterIndex) async -> [ID: Result<Tree, any Error>] {
        var results: [ID: Result<Tree, any Error>] = [:]
        var located: [(id: ID, location: BlobLocation)] = []
        for id in Set(ids) {
            if let location = index.lookup(id) {
                located.append((id, location))
            } else {
                results[id] = .failure(BunkerError(.objectNotFound, "Blob \(id.short) is in no index: the repository is incomplete (run `bunker verify`)."))
            }
        }
        located.sort { ($0.location.pack, $0.location.blob.offset) < ($1.location.pack, $1.location.blob.offset) }
        let gap = readGap
        var runs: [[(id: ID, location: BlobLocation)]] = []
        var run: (pack: ID, start: Int, end: Int)?
        for listing in located {
            let start = Int(listing.location.blob.offset)
            let end = start + Int(listing.location.blob.length)
            if let current = run, current.pack == listing.location.pack, start - current.end <= gap, end - current.start <= 8 << 20 {
                runs[runs.count - 1].append(listing)
                run?.end = max(current.end, end)
            } else {
                runs.append([listing])
                run = (listing.location.pack, start, end)
            }
        }
        return await withTaskGroup(of: [(ID, Result<Tree, any Error>)].self) { group in
            var running = 0
            for listings in runs {
                if running >= parallelReads, let loaded = await group.next() {
                    running -= 1
                    for (id, tree) in loaded { results[id] = tree }
                }
                group.addTask { await self.loadTreeRun(listings, in: index) }
                running += 1
            }
            for await loaded in group {
                for (id, tree) in loaded { results[id] = tree }
            }
            return results
        }
    }

    private func loadTreeRun(_ listings: [(id: ID, location: BlobLocation)], in index: MasterIndex) async -> [(ID, Result<Tree, any Error>)] {
        if listings.count > 1, let blobs = try? await loadBlobs(at: listings.map(\.location), decompressor: nil),
           let trees = try? blobs.map({ try TreeCoding.decode($0) }) {
            return zip(listings, trees).map { ($0.id, .success($1)) }
        }
        var result: [(ID, Result<Tree, any Error>)] = []
        for listing in listings {
            do {
                result.append((listing.id, .success(try await loadTree(listing.id, in: index))))
            } catch {
                result.append((listing.id, .failure(error)))
            }
        }
        return result
    }

    /// Walks directory listings depth first from `roots`, reading the listings of up to
    /// ``listingBatch`` items waiting on top of the stack together (``loadTrees(_:in:)``).
    ///
    /// Items are taken from the top of the stack, the last pushed first, a batch at a time; a
    /// batch's items are visited in the order taken, and what they push waits for the next
    /// batch. `listing` is called once for each item taken, before any item of its batch is
    /// visited: it says which listing the item needs, or nil to skip the item. `visit` then gets
    /// each item that needs one, with the listing or the error that kept it from being read, and
    /// returns the items under it, pushed in the order given.
    func walkListings<Item>(
        from roots: [Item],
        in index: MasterIndex? = nil,
        listing: (Item) -> ID?,
        visit: (Item, Result<Tree, any Error>) async throws -> [Item]
    ) async throws {
        var stack = roots
        while !stack.isEmpty {
            try Task.checkCancellation()
            let batch = Array(stack.suffix(Self.listingBatch).reversed())
            stack.removeLast(batch.count)
            var wanted: [(item: Item, id: ID)] = []
            for item in batch {
                if let id = listing(item) { wanted.append((item, id)) }
            }
            let trees = await loadTrees(wanted.map(\.id), in: index ?? self.index)
            for (item, id) in wanted {
                stack.append(contentsOf: try await visit(item, trees[id]!))
            }
        }
    }
}
