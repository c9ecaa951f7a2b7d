import Crypto
import Foundation

/// Reads a file's content back from a repository, in order, checked end to end.
///
/// Chunks are loaded in batches of about 2 MiB (so that a database's small page chunks, adjacent
/// in their packs, cost one request), the next ones while `body` consumes the current one: two
/// at a time from a local directory, more from an object store (half the loader's
/// ``BlobLoader/parallelReads``), where a request's wait, not the disk, is what takes the time. The
/// SHA-256 of everything handed to `body` is compared with the one recorded at backup time when
/// the content ends: a consumer that must not keep unverified data (a restore into place, a
/// database load in one transaction) commits only after `read` returns. That check stands for the
/// blobs' own (each blob is still authenticated as it is decrypted), so a blob is checked against
/// its id only when the content turns out wrong, to name it.
public struct ContentReader: Sendable {
    private let loader: any BlobLoader
    private let decompressors = WorkerPool { ZstdDecompressor() }

    public init(loader: any BlobLoader) {
        self.loader = loader
    }

    /// Hands `node`'s content to `body` piece by piece; returns its length.
    ///
    /// Throws ``BunkerError/Code/integrity`` when the content's SHA-256 differs from the node's.
    @discardableResult
    public func read(_ node: Node, _ body: (Data) async throws -> Void) async throws -> UInt64 {
        guard node.type == .file else {
            throw BunkerError(.invalidArgument, "\(node.name) is not a regular file in the snapshot.")
        }
        var hasher = SHA256()
        var length: UInt64 = 0
        let content = node.content ?? []
        let average = max(1, Int(node.size ?? 0) / max(1, content.count))
        let perBatch = max(1, (2 << 20) / average)
        let batches = stride(from: 0, to: content.count, by: perBatch).map { Array(content[$0..<min(content.count, $0 + perBatch)]) }
        try await withThrowingTaskGroup(of: (Int, [Data]).self) { group in
            var loaded: [Int: [Data]] = [:]
            var next = 0
            func launch() {
                let (i, ids) = (next, batches[next])
                next += 1
                group.addTask { (i, try await self.load(ids, checked: false)) }
            }
            while next < min(max(2, loader.parallelReads / 2), batches.count) { launch() }
            for i in batches.indices {
                while loaded[i] == nil, let (done, blobs) = try await group.next() { loaded[done] = blobs }
                let blobs = loaded.removeValue(forKey: i)!
                if next < batches.count { launch() }
                // A lone blob is handed on as it is, unless it is a slice of its bundle: `body`
                // is always given data that starts at index 0.
                let piece = blobs.count == 1 && blobs[0].startIndex == 0 ? blobs[0] : Self.joined(blobs)
                hasher.update(data: piece)
                length += UInt64(piece.count)
                try await body(piece)
            }
        }
        let digest = ID(digest: hasher.finalize()).hex
        guard digest == node.sha256 else {
            // The blobs were not checked one by one (``BlobLoader/loadContent(_:decompressor:)``):
            // read them again, checked, so that a blob that is not what its id says is named
            // with its pack, as `bunker verify` would name it.
            for batch in batches { _ = try await load(batch, checked: true) }
            throw BunkerError(.integrity, "The restored content's SHA-256 (\(digest)) differs from the one recorded at backup time (\(node.sha256 ?? "none")).")
        }
        return length
    }

    private func load(_ ids: [ID], checked: Bool) async throws -> [Data] {
        let decompressor = decompressors.take()
        defer { decompressors.put(decompressor) }
        return checked ? try await loader.loadBlobs(ids, decompressor: decompressor)
            : try await loader.loadContent(ids, decompressor: decompressor)
    }

    /// A batch's blobs as one piece: a database's page-sized chunks are written with one call.
    private static func joined(_ blobs: [Data]) -> Data {
        var joined = Data()
        joined.reserveCapacity(blobs.reduce(0) { $0 + $1.count })
        for blob in blobs { joined.append(blob) }
        return joined
    }
}
