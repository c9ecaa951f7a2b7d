import Foundation

/// One archived WAL file in the repository: a self-contained object of kind ``ObjectKind/wal``.
///
/// **Why one object per file, not packs or a snapshot per segment.** WAL deduplicates poorly:
/// every record carries its LSN and a CRC, so no two segments share chunks, and a snapshot per
/// segment would add a tree and an index entry per file for nothing. It compresses well instead,
/// measured with zstd level 3 on 16 MiB segments of PostgreSQL 15 (2026-12-03, this machine):
/// pgbench's TPC-B load 5.2–5.9× (2.9–3.2 MiB stored), `pgbench -i`'s bulk load 35× (470 KiB),
/// the segment of initdb 11×; a segment switched early by `archive_timeout` compresses as far as
/// its unused tail allows (zeros in a new file, old WAL in a recycled one). So each file is
/// compressed whole with zstd, sealed
/// with the master key (AES-256-GCM, as every object) and stored on its own, written once and
/// never rewritten: `wal fetch` then costs one listing and one read.
///
/// **Name**: `<scope>-<file>-<sha256>`: the source's scope (its name where that is a plain
/// name, see ``scope(of:)``), the WAL file's name, and the SHA-256 of the stored bytes, so
/// that integrity is checked without the key (as for every object). A lookup lists the prefix
/// `<scope>-<file>-`. The name does not reveal the file's content: the plaintext's hash is
/// inside the sealed bytes.
///
/// **Content** (the plaintext that is sealed): a 4-byte big-endian length, a JSON header
/// (``WalObject/Header``: source, system identifier, timeline, file name, size and SHA-256 of
/// the file, when it was pushed, compression), then the file's bytes, zstd-compressed when
/// that made them smaller (`"compression": "zstd"`) or as they are (`"none"`).
///
/// **Cluster record**: `<scope>-cluster-<system identifier>`, written by the first push of a
/// segment; every later push must come from the same cluster.
public enum WalObject {
    /// What the sealed content says about the file.
    public struct Header: Codable, Sendable, Equatable {
        public var format = 1
        public var source: String
        /// The cluster's system identifier, in decimal (a 64-bit number JSON readers may round);
        /// nil for text files (history, backup labels), which do not carry it.
        public var systemIdentifier: String?
        public var timeline: UInt32
        public var file: String
        public var size: Int
        public var sha256: String
        public var pushedAt: Date
        public var compression: String

        enum CodingKeys: String, CodingKey {
            case format, source, timeline, file, size, sha256, compression
            case systemIdentifier = "system_identifier"
            case pushedAt = "pushed_at"
        }
    }

    /// The cluster record's sealed content.
    public struct Cluster: Codable, Sendable, Equatable {
        public var source: String
        public var systemIdentifier: String
        public var segmentSize: Int
        public var registeredAt: Date

        enum CodingKeys: String, CodingKey {
            case source
            case systemIdentifier = "system_identifier"
            case segmentSize = "segment_size"
            case registeredAt = "registered_at"
        }
    }

    /// A parsed object name.
    public enum Name: Equatable, Sendable {
        case file(scope: String, file: WalFileName, stored: ID)
        case cluster(scope: String, systemIdentifier: UInt64)

        /// Reads an object name from the right (a scope may hold `-`); nil for anything else.
        public init?(_ name: String) {
            guard let last = name.lastIndex(of: "-") else { return nil }
            let tail = String(name[name.index(after: last)...])
            let head = String(name[..<last])
            guard let middle = head.lastIndex(of: "-") else { return nil }
            let scope = String(head[..<middle])
            let part = String(head[head.index(after: middle)...])
            guard !scope.isEmpty else { return nil }
            if let id = ID(hex: tail), tail == id.hex, let file = WalFileName(part) {
                self = .file(scope: scope, file: file, stored: id)
            } else if part == "cluster", let sysid = UInt64(tail) {
                self = .cluster(scope: scope, systemIdentifier: sysid)
            } else {
                return nil
            }
        }

        public var scope: String {
            switch self {
            case .file(let scope, _, _), .cluster(let scope, _): return scope
            }
        }
    }

    /// The part of object names that stands for a source: its name when made only of letters,
    /// digits, `.`, `_` and `-` (and not starting with `.`), else `~` and its UTF-8 bytes in hex
    /// (`~` is in no plain name, so the two never collide), so that any source name gives a name
    /// every storage accepts.
    public static func scope(of source: String) -> String {
        let plain = source.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        if plain, !source.isEmpty, !source.hasPrefix(".") { return source }
        return "~" + source.utf8.map { String(format: "%02x", $0) }.joined()
    }

    /// The name of the stored object holding `file`, sealed into `stored`.
    static func name(scope: String, file: String, stored: Data) -> String {
        "\(scope)-\(file)-\(ID.sha256(of: stored).hex)"
    }

    /// The prefix every stored copy of `file` is named with.
    static func prefix(scope: String, file: String) -> String {
        "\(scope)-\(file)-"
    }

    static func clusterName(scope: String, systemIdentifier: UInt64) -> String {
        "\(scope)-cluster-\(systemIdentifier)"
    }

    /// The plaintext to seal: header length, header, the (compressed) file.
    static func encode(_ contents: Data, header: Header, compressionLevel: Int) throws -> (plaintext: Data, header: Header) {
        var header = header
        let payload: Data
        if let compressed = ZstdCompressor(level: compressionLevel).compress(contents) {
            payload = compressed
            header.compression = "zstd"
        } else {
            payload = contents
            header.compression = "none"
        }
        let headerBytes = try JSONCoding.encoder.encode(header)
        var plaintext = Data(capacity: 4 + headerBytes.count + payload.count)
        withUnsafeBytes(of: UInt32(headerBytes.count).bigEndian) { plaintext.append(contentsOf: $0) }
        plaintext.append(headerBytes)
        plaintext.append(payload)
        return (plaintext, header)
    }

    /// The header alone.
    static func decodeHeader(_ plaintext: Data, object: String) throws -> (header: Header, payloadStart: Int) {
        guard plaintext.count >= 4 else { throw damaged(object, "it is too short") }
        let start = plaintext.startIndex
        let length = Int(plaintext[start..<start + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard 4 + length <= plaintext.count else { throw damaged(object, "its header is cut short") }
        let header: Header
        do {
            header = try JSONCoding.decoder.decode(Header.self, from: plaintext[start + 4..<start + 4 + length])
        } catch {
            throw damaged(object, "its header cannot be read (\(error))")
        }
        guard header.format == 1 else {
            throw BunkerError(.unsupportedFormat, "wal/\(object) has format \(header.format), which this Bunker cannot read; upgrade Bunker.")
        }
        return (header, 4 + length)
    }

    /// The header and the file's bytes, checked against the size and SHA-256 the header records.
    static func decode(_ plaintext: Data, object: String) throws -> (header: Header, contents: Data) {
        let (header, payloadStart) = try decodeHeader(plaintext, object: object)
        let payload = plaintext.subdata(in: plaintext.startIndex + payloadStart..<plaintext.endIndex)
        let contents: Data
        switch header.compression {
        case "zstd": contents = try ZstdDecompressor().decompress(payload, size: header.size)
        case "none": contents = payload
        default: throw BunkerError(.unsupportedFormat, "wal/\(object) is compressed with \(header.compression), which this Bunker cannot read; upgrade Bunker.")
        }
        guard contents.count == header.size, ID.sha256(of: contents).hex == header.sha256 else {
            throw damaged(object, "the file it holds does not match the size and SHA-256 recorded with it")
        }
        return (header, contents)
    }

    static func damaged(_ object: String, _ why: String) -> BunkerError {
        BunkerError(.corruptObject, "wal/\(object) is damaged: \(why).")
    }
}
