import Crypto
import Foundation

/// A 32-byte identifier: a chunk's keyed hash, or a stored object's SHA-256.
///
/// Held as four words so that hashing and comparing are cheap in the in-memory index.
public struct ID: Hashable, Sendable, Comparable, CustomStringConvertible {
    var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// Builds an ID from exactly 32 bytes.
    public init<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        precondition(bytes.count == 32, "an ID is 32 bytes")
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        (w0, w1, w2, w3) = words
    }

    /// Builds an ID from exactly 32 raw bytes (the fast path for parsing indexes and packs).
    public init(bytes raw: UnsafeRawBufferPointer) {
        precondition(raw.count == 32, "an ID is 32 bytes")
        w0 = raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        w1 = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        w2 = raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        w3 = raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
    }

    /// Builds an ID from a digest or MAC.
    public init(digest: some ContiguousBytes) {
        self = digest.withUnsafeBytes { ID(bytes: $0) }
    }

    /// Parses 64 lowercase or uppercase hex digits.
    public init?(hex: String) {
        guard hex.utf8.count == 64 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = ID.nibble(high), let l = ID.nibble(low) else { return nil }
            bytes.append(h << 4 | l)
        }
        self.init(bytes: bytes)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }

    /// The 32 bytes, in order.
    public var bytes: [UInt8] {
        var words = (w0, w1, w2, w3)
        return withUnsafeBytes(of: &words) { Array($0) }
    }

    /// 64 lowercase hex digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The first eight hex digits, as shown to people.
    public var short: String { String(hex.prefix(8)) }

    public var description: String { hex }

    public static func < (a: ID, b: ID) -> Bool { a.hex < b.hex }

    /// The SHA-256 of some bytes: how every stored object is named.
    public static func sha256<D: DataProtocol>(of data: D) -> ID {
        ID(digest: SHA256.hash(data: data))
    }
}

extension ID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = ID(hex: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a 64-digit hex id: \(text)")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// What a blob inside a pack holds.
public enum BlobType: UInt8, Sendable, Codable {
    /// A chunk of file or dump content.
    case data = 0
    /// A directory listing (a ``Tree``), JSON.
    case tree = 1
}
