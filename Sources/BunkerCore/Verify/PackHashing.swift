import Crypto
import Foundation

/// A pack's SHA-256 computed while its blobs are checked against their ids: each unit's sealed
/// bytes and its blobs' plaintexts are hashed as two chains in lockstep where the processor allows
/// (``SHA256Stream``; verify hashes both, and this is about a tenth of its CPU time on this project's
/// machine), one after the other with swift-crypto elsewhere.
struct PackHashing {
    private let repository: Repository
    private let pack: ID
    private let keyed: KeyedSHA256?
    private var alone = SHA256()
    private var paired = SHA256Stream()

    init(repository: Repository, pack: ID) {
        self.repository = repository
        self.pack = pack
        self.keyed = repository.key.pairedIDs
    }

    /// Adds bytes of the pack that are not a unit being checked: the header (and anything
    /// between units, were there any).
    mutating func add(_ bytes: Data) {
        guard !bytes.isEmpty else { return }
        if keyed == nil {
            alone.update(data: bytes)
        } else {
            bytes.withUnsafeBytes { paired.update($0) }
        }
    }

    /// Adds a unit's `sealed` bytes and checks that each of its blobs, found in the unit's
    /// `plaintext`, hashes to its id; false when one does not (or lies outside the unit).
    mutating func add(unit sealed: Data, holding blobs: some Collection<PackedBlob>, plaintext: Data) -> Bool {
        guard let keyed else {
            alone.update(data: sealed)
            return blobs.allSatisfy { (try? repository.extractBlob($0, from: plaintext, pack: pack)) != nil }
        }
        // Two lanes: the unit's sealed bytes (into the pack's hash) start on one, the blobs'
        // plaintexts follow one another on both, so that nearly every block is hashed in
        // lockstep with another (a unit's plaintext is up to several times its sealed length).
        // A blob's id is compared as soon as its plaintext ends.
        var waiting = blobs.makeIterator()
        var outside = false
        func nextBlob() -> Message? {
            guard let blob = waiting.next() else { return nil }
            guard let plain = try? repository.extractBlob(blob, from: plaintext, pack: pack, checked: false) else {
                outside = true
                return nil
            }
            return Message(stream: keyed.start(), left: plain, blob: blob.id)
        }
        var lanes = (Message(stream: paired, left: sealed, blob: nil) as Message?, nextBlob())
        if outside { return false }
        while lanes.0 != nil || lanes.1 != nil {
            if var first = lanes.0, var second = lanes.1 {
                let both = min(first.left.count, second.left.count)
                first.left.prefix(both).withUnsafeBytes { a in
                    second.left.prefix(both).withUnsafeBytes { b in SHA256Stream.update(&first.stream, with: a, &second.stream, with: b) }
                }
                first.left = first.left.dropFirst(both)
                second.left = second.left.dropFirst(both)
                lanes = (first, second)
            } else if var only = lanes.0 ?? lanes.1 {
                only.left.withUnsafeBytes { only.stream.update($0) }
                only.left = Data()
                lanes = (only, nil)
            }
            for lane in 0..<2 {
                guard let message = lane == 0 ? lanes.0 : lanes.1, message.left.isEmpty else { continue }
                if let id = message.blob {
                    guard keyed.finalize(message.stream) == id else { return false }
                } else {
                    paired = message.stream
                }
                if lane == 0 { lanes.0 = nextBlob() } else { lanes.1 = nextBlob() }
                if outside { return false }
            }
        }
        return true
    }

    /// A message being hashed on one of ``add(unit:holding:plaintext:)``'s lanes: a blob's
    /// plaintext for its id, or (`blob` nil) a unit's sealed bytes for the pack's hash.
    private struct Message {
        var stream: SHA256Stream
        var left: Data
        let blob: ID?
    }

    /// The pack's SHA-256.
    consuming func finalize() -> ID {
        keyed == nil ? ID(digest: alone.finalize()) : paired.finalize()
    }
}
