import BunkerCore
import Foundation

/// Writes a ZIP archive front to back, one entry at a time, with bounded memory, into an output
/// that only appends (a file, or an HTTP response as it is sent).
///
/// Entries are stored (not deflated: most of a backup is already-compressed images, and the
/// rest streams faster than it would deflate). Each entry's CRC-32 is computed as its bytes pass
/// and written in a data descriptor after them, so nothing is rewritten; entries of 4 GiB or
/// more, offsets past 4 GiB and more than 65,535 entries use the ZIP64 extensions. Names are
/// UTF-8 (flag bit 11). Headers and small pieces are gathered into writes of up to
/// ``bufferSize`` bytes; a symbolic link is an entry of mode `0o120xxx` holding its target, as
/// Info-ZIP writes it.
final class ZipWriter {
    private struct Entry {
        var name: [UInt8]
        var crc: UInt32
        var size: UInt64
        var offset: UInt64
        var mode: UInt32
        var time: UInt16
        var date: UInt16
        var zip64: Bool
    }

    /// The most bytes gathered before they are passed on.
    static let bufferSize = 256 << 10

    private let output: @Sendable (Data) async throws -> Void
    private var buffer = Data()
    private var offset: UInt64 = 0
    private var entries: [Entry] = []
    private var current: Entry?
    private var crc = CRC32()
    private var written: UInt64 = 0

    init(output: @escaping @Sendable (Data) async throws -> Void) {
        self.output = output
    }

    /// Starts an entry of `size` bytes (a directory when `name` ends with "/").
    func begin(name: String, size: UInt64, mode: UInt32, modified: Date) async throws {
        precondition(current == nil, "finish the previous entry first")
        let (time, date) = Self.dosTime(modified)
        let zip64 = size >= 0xFFFF_FFFF
        let entry = Entry(name: Array(name.utf8), crc: 0, size: size, offset: offset, mode: mode, time: time, date: date, zip64: zip64)
        var header = ByteWriter()
        header.u32(0x0403_4b50)
        header.u16(zip64 ? 45 : 20)
        header.u16(0x0808)  // data descriptor follows; UTF-8 names
        header.u16(0)  // stored
        header.u16(time)
        header.u16(date)
        header.u32(0)  // CRC-32: in the data descriptor
        header.u32(zip64 ? 0xFFFF_FFFF : 0)
        header.u32(zip64 ? 0xFFFF_FFFF : 0)
        header.u16(UInt16(entry.name.count))
        header.u16(zip64 ? 20 : 0)
        header.bytes(entry.name)
        if zip64 {
            header.u16(0x0001)
            header.u16(16)
            header.u64(0)
            header.u64(0)
        }
        try await emit(header.data)
        current = entry
        crc = CRC32()
        written = 0
    }

    /// Appends bytes to the current entry.
    func write(_ data: Data) async throws {
        crc.update(data)
        written += UInt64(data.count)
        try await emit(data)
    }

    /// Ends the current entry; its length must be what ``begin(name:size:mode:modified:)`` said.
    func end() async throws {
        guard var entry = current else { return }
        guard written == entry.size else {
            throw BunkerError(.integrity, "Entry \(String(decoding: entry.name, as: UTF8.self)) holds \(written) bytes, not the \(entry.size) expected.")
        }
        entry.crc = crc.value
        var descriptor = ByteWriter()
        descriptor.u32(0x0807_4b50)
        descriptor.u32(entry.crc)
        if entry.zip64 {
            descriptor.u64(entry.size)
            descriptor.u64(entry.size)
        } else {
            descriptor.u32(UInt32(entry.size))
            descriptor.u32(UInt32(entry.size))
        }
        try await emit(descriptor.data)
        entries.append(entry)
        current = nil
    }

    /// Writes the central directory and passes on what is gathered; the archive is complete
    /// after this.
    func finish() async throws {
        let directoryStart = offset
        for entry in entries {
            let bigSize = entry.size >= 0xFFFF_FFFF
            let bigOffset = entry.offset >= 0xFFFF_FFFF
            var extra = ByteWriter()
            if bigSize || bigOffset {
                extra.u16(0x0001)
                extra.u16(UInt16((bigSize ? 16 : 0) + (bigOffset ? 8 : 0)))
                if bigSize {
                    extra.u64(entry.size)
                    extra.u64(entry.size)
                }
                if bigOffset { extra.u64(entry.offset) }
            }
            var record = ByteWriter()
            record.u32(0x0201_4b50)
            record.u16(3 << 8 | 45)  // made by: Unix, ZIP 4.5
            record.u16(entry.zip64 || bigOffset ? 45 : 20)
            record.u16(0x0808)
            record.u16(0)
            record.u16(entry.time)
            record.u16(entry.date)
            record.u32(entry.crc)
            record.u32(bigSize ? 0xFFFF_FFFF : UInt32(entry.size))
            record.u32(bigSize ? 0xFFFF_FFFF : UInt32(entry.size))
            record.u16(UInt16(entry.name.count))
            record.u16(UInt16(extra.data.count))
            record.u16(0)  // comment
            record.u16(0)  // disk
            record.u16(0)  // internal attributes
            record.u32(entry.mode << 16)
            record.u32(bigOffset ? 0xFFFF_FFFF : UInt32(entry.offset))
            record.bytes(entry.name)
            record.bytes(extra.data)
            try await emit(record.data)
        }
        let directorySize = offset - directoryStart
        let count = UInt64(entries.count)
        let needs64 = count >= 0xFFFF || directoryStart >= 0xFFFF_FFFF || directorySize >= 0xFFFF_FFFF
        var end = ByteWriter()
        if needs64 {
            let recordStart = offset
            end.u32(0x0606_4b50)
            end.u64(44)
            end.u16(3 << 8 | 45)
            end.u16(45)
            end.u32(0)
            end.u32(0)
            end.u64(count)
            end.u64(count)
            end.u64(directorySize)
            end.u64(directoryStart)
            end.u32(0x0706_4b50)
            end.u32(0)
            end.u64(recordStart)
            end.u32(1)
        }
        end.u32(0x0605_4b50)
        end.u16(0)
        end.u16(0)
        end.u16(needs64 ? 0xFFFF : UInt16(count))
        end.u16(needs64 ? 0xFFFF : UInt16(count))
        end.u32(needs64 ? 0xFFFF_FFFF : UInt32(directorySize))
        end.u32(needs64 ? 0xFFFF_FFFF : UInt32(directoryStart))
        end.u16(0)
        try await emit(end.data)
        try await flush()
    }

    /// Appends to the archive: gathered while small, passed on when the buffer fills (a large
    /// piece of an entry is passed on as it is, without a copy).
    private func emit(_ data: Data) async throws {
        offset += UInt64(data.count)
        if buffer.count + data.count <= Self.bufferSize {
            buffer.append(data)
            return
        }
        try await flush()
        if data.count >= Self.bufferSize {
            try await output(data)
        } else {
            buffer = data
        }
    }

    private func flush() async throws {
        guard !buffer.isEmpty else { return }
        let pending = buffer
        buffer = Data()
        try await output(pending)
    }

    /// MS-DOS time and date (UTC), the resolution ZIP's headers have.
    static func dosTime(_ date: Date) -> (UInt16, UInt16) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let year = max(1980, min(2107, c.year ?? 1980))
        let time = UInt16((c.hour ?? 0) << 11 | (c.minute ?? 0) << 5 | (c.second ?? 0) / 2)
        let day = UInt16((year - 1980) << 9 | (c.month ?? 1) << 5 | (c.day ?? 1))
        return (time, day)
    }
}

/// Little-endian field writer for ZIP headers.
private struct ByteWriter {
    var data = Data()
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func bytes(_ b: [UInt8]) { data.append(contentsOf: b) }
    mutating func bytes(_ d: Data) { data.append(d) }
}

/// CRC-32 (IEEE 802.3, as ZIP uses), eight bytes per step.
struct CRC32 {
    private static let tables: [[UInt32]] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            tables[0][i] = c
        }
        for i in 0..<256 {
            for t in 1..<8 { tables[t][i] = tables[0][Int(tables[t - 1][i] & 0xFF)] ^ (tables[t - 1][i] >> 8) }
        }
        return tables
    }()

    private var state: UInt32 = 0xFFFF_FFFF
    var value: UInt32 { state ^ 0xFFFF_FFFF }

    mutating func update(_ data: Data) {
        data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            let t = Self.tables
            var c = state
            var i = 0
            let n = buffer.count
            t[0].withUnsafeBufferPointer { t0 in
            t[1].withUnsafeBufferPointer { t1 in
            t[2].withUnsafeBufferPointer { t2 in
            t[3].withUnsafeBufferPointer { t3 in
            t[4].withUnsafeBufferPointer { t4 in
            t[5].withUnsafeBufferPointer { t5 in
            t[6].withUnsafeBufferPointer { t6 in
            t[7].withUnsafeBufferPointer { t7 in
                while i + 8 <= n {
                    let lo = c ^ (UInt32(buffer[i]) | UInt32(buffer[i + 1]) << 8 | UInt32(buffer[i + 2]) << 16 | UInt32(buffer[i + 3]) << 24)
                    let hi = UInt32(buffer[i + 4]) | UInt32(buffer[i + 5]) << 8 | UInt32(buffer[i + 6]) << 16 | UInt32(buffer[i + 7]) << 24
                    c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                        ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
                    i += 8
                }
                while i < n {
                    c = t0[Int((c ^ UInt32(buffer[i])) & 0xFF)] ^ (c >> 8)
                    i += 1
                }
            }}}}}}}}
            state = c
        }
    }
}
