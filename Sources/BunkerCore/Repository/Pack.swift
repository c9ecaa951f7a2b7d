import Foundation

/// Where one blob sits inside a pack.
public struct PackedBlob: Sendable, Equatable {
    public var type: BlobType
    public var id: ID
    public var offset: UInt32
    /// Stored (encrypted) length.
    public var length: UInt32
    /// Plaintext length before compression, or 0 when the blob is stored uncompressed.
    public var rawLength: UInt32

    /// The length of the plaintext the blob holds.
    public var plaintextLength: Int {
        rawLength > 0 ? Int(rawLength) : Int(length) - MasterKey.sealOverhead
    }
}

/// The layout of a pack: `blob… header header_length`.
///
/// Each blob is sealed on its own. The header lists, per blob, its type (1 byte), id (32), stored
/// length (4, little-endian) and raw length (4); it is sealed too, and followed by its sealed
/// length as 4 little-endian bytes. Offsets follow from the lengths.
enum PackFormat {
    static let entrySize = 1 + 32 + 4 + 4

    static func encodeHeader(_ blobs: [PackedBlob]) -> Data {
        var out = Data(capacity: blobs.count * entrySize)
        for blob in blobs {
            out.append(blob.type.rawValue)
            out.append(contentsOf: blob.id.bytes)
            out.appendLittleEndian(blob.length)
            out.appendLittleEndian(blob.rawLength)
        }
        return out
    }

    static func decodeHeader(_ data: Data, pack: ID) throws -> [PackedBlob] {
        guard data.count % entrySize == 0 else {
            throw BunkerError(.corruptObject, "Pack \(pack.short) has a malformed header.")
        }
        var blobs: [PackedBlob] = []
        var offset: UInt32 = 0
        var reader = ByteReader(data)
        while !reader.isAtEnd {
            guard let type = BlobType(rawValue: try reader.byte()) else {
                throw BunkerError(.corruptObject, "Pack \(pack.short) names an unknown blob type.")
            }
            let id = ID(bytes: try reader.bytes(32))
            let length = try reader.uint32()
            let raw = try reader.uint32()
            blobs.append(PackedBlob(type: type, id: id, offset: offset, length: length, rawLength: raw))
            offset &+= length
        }
        return blobs
    }

    /// Reads and authenticates a whole pack's header from the pack's bytes.
    static func readHeader(of pack: Data, id: ID, key: MasterKey) throws -> [PackedBlob] {
        guard pack.count >= 4 + MasterKey.sealOverhead else {
            throw BunkerError(.corruptObject, "Pack \(id.short) is too short to hold a header (truncated?).")
        }
        let lengthStart = pack.startIndex + pack.count - 4
        let headerLength = Int(pack[lengthStart..<(lengthStart + 4)].littleEndianUInt32)
        guard headerLength >= MasterKey.sealOverhead, headerLength <= pack.count - 4 else {
            throw BunkerError(.corruptObject, "Pack \(id.short) has an impossible header length (truncated?).")
        }
        let sealed = pack[(lengthStart - headerLength)..<lengthStart]
        let blobs = try decodeHeader(try key.open(sealed), pack: id)
        let dataEnd = blobs.reduce(0) { $0 + Int($1.length) }
        guard dataEnd == pack.count - 4 - headerLength else {
            throw BunkerError(.corruptObject, "Pack \(id.short)'s header does not match its size.")
        }
        return blobs
    }
}

/// Accumulates sealed blobs into packs and writes each full pack to storage.
///
/// Packs are written before the index that names them; a pack that reaches storage but not an
/// index (the process died in between) is harmless and is removed by prune.
actor Packer {
    private let storage: any Storage
    private let key: MasterKey
    private let targetSize: Int
    private let onPackSaved: @Sendable (ID, [PackedBlob], Int) async throws -> Void
    private var buffer = Data()
    private var blobs: [PackedBlob] = []

    init(storage: any Storage, key: MasterKey, targetSize: Int,
         onPackSaved: @escaping @Sendable (ID, [PackedBlob], Int) async throws -> Void) {
        self.storage = storage
        self.key = key
        self.targetSize = targetSize
        self.onPackSaved = onPackSaved
        buffer.reserveCapacity(targetSize + (1 << 20))
    }

    /// A sealed blob on its way into a pack.
    struct Entry: Sendable {
        var type: BlobType
        var id: ID
        var sealed: Data
        /// Plaintext length if compressed, else 0.
        var rawLength: Int
    }

    /// Adds sealed blobs; writes the pack whenever it is full.
    func add(_ entries: [Entry]) async throws {
        for entry in entries {
            blobs.append(PackedBlob(type: entry.type, id: entry.id, offset: UInt32(buffer.count),
                                    length: UInt32(entry.sealed.count), rawLength: UInt32(entry.rawLength)))
            buffer.append(entry.sealed)
            if buffer.count >= targetSize {
                try await writeCurrent()
            }
        }
    }

    /// Writes the pack in progress, if any.
    func flush() async throws {
        if !blobs.isEmpty { try await writeCurrent() }
    }

    private func writeCurrent() async throws {
        var pack = buffer
        let entries = blobs
        buffer = Data()
        buffer.reserveCapacity(targetSize + (1 << 20))
        blobs = []
        let header = try key.seal(PackFormat.encodeHeader(entries))
        pack.append(header)
        pack.appendLittleEndian(UInt32(header.count))
        let id = ID.sha256(of: pack)
        try await storage.save(ObjectHandle(.pack, id), data: pack)
        try await onPackSaved(id, entries, pack.count)
    }
}

extension Data {
    mutating func appendLittleEndian(_ value: UInt32) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    var littleEndianUInt32: UInt32 {
        var value: UInt32 = 0
        for (i, b) in self.prefix(4).enumerated() { value |= UInt32(b) << (8 * UInt32(i)) }
        return value
    }
}

/// Reads fixed-size fields from a byte buffer, failing cleanly at its end.
struct ByteReader {
    private let data: Data
    private var position: Int

    init(_ data: Data) {
        self.data = data
        self.position = data.startIndex
    }

    var isAtEnd: Bool { position >= data.endIndex }

    mutating func bytes(_ count: Int) throws -> Data {
        guard data.endIndex - position >= count else {
            throw BunkerError(.corruptObject, "Unexpected end of data.")
        }
        defer { position += count }
        return data[position..<(position + count)]
    }

    mutating func byte() throws -> UInt8 { try bytes(1).first! }

    mutating func uint32() throws -> UInt32 { try bytes(4).littleEndianUInt32 }
}
