import Foundation

/// The name of a file PostgreSQL archives: a segment (`000000010000000A000000FF`), a timeline
/// history (`00000002.history`), a backup label (`…000000FF.00000028.backup`) or the last,
/// partial segment of a timeline left behind by a promotion (`…000000FF.partial`), or Bunker's
/// own copy of the segment being written now, streamed from the server (`…000000FF.stream`,
/// see ``WalArchive/pushStreamed(_:contents:)``).
///
/// A segment name is three 8-digit upper-case hex numbers: the timeline, then the high and low
/// 32 bits of the segment number counted in "log" files of 4 GiB. With segment size `s`, a log
/// holds `0x1_0000_0000 / s` segments, so the position of a segment is
/// `log * segmentsPerLog + seg` (PostgreSQL's `XLogFromFileName`).
public struct WalFileName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        case segment, history, backup, partial, stream
    }

    public let text: String
    public let kind: Kind
    public let timeline: UInt32
    /// The high 32 bits of the segment number (nil for a history file).
    public let log: UInt32?
    /// The low 32 bits, in segments of the cluster's size (nil for a history file).
    public let seg: UInt32?

    /// Parses a name PostgreSQL gives to archived files; nil for anything else (a path, a
    /// temporary name).
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        func hex(_ range: Range<Int>) -> UInt32? {
            guard range.upperBound <= utf8.count else { return nil }
            let digits = utf8[range]
            guard digits.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x46).contains($0) }) else { return nil }
            return UInt32(String(decoding: digits, as: UTF8.self), radix: 16)
        }
        guard let timeline = hex(0..<8), timeline > 0 else { return nil }
        self.text = text
        self.timeline = timeline
        if utf8.count == 16, text.hasSuffix(".history") {
            kind = .history
            log = nil
            seg = nil
            return
        }
        guard let log = hex(8..<16), let seg = hex(16..<24) else { return nil }
        self.log = log
        self.seg = seg
        let rest = String(decoding: utf8[24...], as: UTF8.self)
        switch rest {
        case "": kind = .segment
        case ".partial": kind = .partial
        case ".stream": kind = .stream
        default:
            // `.XXXXXXXX.backup`: the offset of the backup's start in the segment.
            guard utf8.count == 40, rest.hasSuffix(".backup"), hex(25..<33) != nil, utf8[24] == UInt8(ascii: ".") else { return nil }
            kind = .backup
        }
    }

    /// The segment's position in its timeline's chain, for a cluster of `segmentSize` bytes
    /// per segment; nil for a history file.
    public func segmentNumber(segmentSize: Int) -> UInt64? {
        guard let log, let seg, segmentSize > 0 else { return nil }
        return UInt64(log) * Self.segmentsPerLog(segmentSize) + UInt64(seg)
    }

    /// The name of segment `number` of `timeline`.
    public static func segment(timeline: UInt32, number: UInt64, segmentSize: Int) -> String {
        let perLog = segmentsPerLog(segmentSize)
        return String(format: "%08X%08X%08X", timeline, UInt32(number / perLog), UInt32(number % perLog))
    }

    static func segmentsPerLog(_ segmentSize: Int) -> UInt64 {
        0x1_0000_0000 / UInt64(segmentSize)
    }

    /// Whether the file is WAL itself (starting with a page header), not a text file.
    public var holdsWAL: Bool { kind == .segment || kind == .partial || kind == .stream }

    public var description: String { text }

    public static func < (a: WalFileName, b: WalFileName) -> Bool { a.text < b.text }
}

/// What the first page of a WAL segment says about the cluster that wrote it.
///
/// Every segment starts with `XLogLongPageHeaderData` (PostgreSQL's `access/xlog_internal.h`),
/// in the server's byte order (little-endian on every platform Bunker runs on):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 2 | `xlp_magic` (changes with each major version) |
/// | 2 | 2 | `xlp_info`; bit `0x0002` (`XLP_LONG_HEADER`) is set on a segment's first page |
/// | 4 | 4 | `xlp_tli` |
/// | 8 | 8 | `xlp_pageaddr` |
/// | 16 | 4 | `xlp_rem_len` (then 4 bytes of padding) |
/// | 24 | 8 | `xlp_sysid`: the cluster's system identifier, set by `initdb` |
/// | 32 | 4 | `xlp_seg_size` |
/// | 36 | 4 | `xlp_xlog_blcksz` |
///
/// Reading it needs no connection to the server, so `wal push` checks which cluster a segment
/// comes from with the bytes alone.
public struct WalSegmentHeader: Sendable, Equatable {
    public let magic: UInt16
    public let systemIdentifier: UInt64
    public let segmentSize: Int
    public let pageSize: Int

    static let longHeaderFlag: UInt16 = 0x0002
    static let length = 40

    /// Reads the long page header at the start of `data`; an error naming `file` when it is not one.
    public init(reading data: Data, file: String) throws {
        guard data.count >= Self.length else {
            throw BunkerError(.invalidArgument, "\(file) is \(data.count) bytes long, too short for a WAL segment: it is not a WAL file, or it was cut short.")
        }
        func read<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var value: T = 0
            withUnsafeMutableBytes(of: &value) { out in
                data.copyBytes(to: out.bindMemory(to: UInt8.self), from: data.startIndex + offset..<data.startIndex + offset + MemoryLayout<T>.size)
            }
            return T(littleEndian: value)
        }
        let info = read(2, UInt16.self)
        magic = read(0, UInt16.self)
        systemIdentifier = read(24, UInt64.self)
        segmentSize = Int(read(32, UInt32.self))
        pageSize = Int(read(36, UInt32.self))
        let sizeIsPowerOfTwo = segmentSize > 0 && segmentSize & (segmentSize - 1) == 0
        guard info & Self.longHeaderFlag != 0, systemIdentifier != 0, sizeIsPowerOfTwo, segmentSize >= 1 << 20, segmentSize <= 1 << 30,
              pageSize >= 1024, pageSize <= 65536 else {
            throw BunkerError(.invalidArgument, "\(file) does not start with a WAL segment's long page header: it is not a WAL segment of a PostgreSQL cluster, or it is damaged.")
        }
    }
}
