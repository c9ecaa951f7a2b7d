import BunkerCore
import CZlib
import Crypto
import Foundation

/// Writes a ZIP archive front to back, one entry at a time, with bounded memory, into an output
/// that only appends (a file, or an HTTP response as it is sent).
///
/// A file entry is deflated (method 8, raw deflate at ``level``) when its first
/// ``sampleSize`` bytes deflate by at least 1/20, and stored otherwise (most of a backup is
/// already-compressed images, which deflate would only slow down): the entry's header waits for
/// that sample, so the decision needs no more than it in memory, and depends on the bytes only.
/// Each entry's CRC-32 and sizes are computed as its bytes pass and written in a data descriptor
/// after them (flag bit 3), so nothing is rewritten; entries that may reach 4 GiB, offsets past
/// 4 GiB and more than 65,535 entries use the ZIP64 extensions. Names are UTF-8 (flag bit 11).
/// Headers and small pieces are gathered into writes of up to ``bufferSize`` bytes; a symbolic
/// link is an entry of mode `0o120xxx` holding its target, as Info-ZIP writes it.
///
/// The same entries give the same bytes: no field holds the time of writing, and deflate is fed
/// in fixed blocks of ``sampleSize`` whatever the pieces ``write(_:)`` is given. Every byte
/// passed on goes through a SHA-256, which ``finish()`` returns: the archive's checksum, as
/// `sha256sum` prints it.
final class ZipWriter {
    private struct Entry {
        var name: [UInt8]
        var crc: UInt32
        /// Bytes of the content.
        var size: UInt64
        /// Bytes written for it: `size` when stored.
        var compressedSize: UInt64
        var offset: UInt64
        var mode: UInt32
        var time: UInt16
        var date: UInt16
        var zip64: Bool
        /// 0 stored, 8 deflated.
        var method: UInt16
        /// Whether deflate may be tried (files; not directories or links).
        var compressible: Bool
    }

    /// The most bytes gathered before they are passed on.
    static let bufferSize = 256 << 10
    /// The start of an entry that decides its method, and the blocks deflate is fed in.
    static let sampleSize = 64 << 10

    /// The deflate level (1–9), or nil to store every entry.
    let level: Int?
    private let output: @Sendable (Data) async throws -> Void
    private var buffer = Data()
    private var offset: UInt64 = 0
    private var entries: [Entry] = []
    private var current: Entry?
    /// The current entry's bytes not yet written: its sample until the method is chosen, then
    /// the part of a deflate block not yet fed.
    private var pending = Data()
    private var decided = false
    private var deflater: Deflater?
    private var crc = CRC32()
    private var written: UInt64 = 0
    private var digest = SHA256()

    /// Bytes of the archive so far.
    var bytesWritten: UInt64 { offset }

    init(level: Int?, output: @escaping @Sendable (Data) async throws -> Void) {
        self.level = level
        self.output = output
    }

    /// Starts an entry of `size` bytes (a directory when `name` ends with "/"); only a
    /// `compressible` one may be deflated.
    func begin(name: String, size: UInt64, mode: UInt32, modified: Date, compressible: Bool = false) async throws {
        precondition(current == nil, "finish the previous entry first")
        let (time, date) = Self.dosTime(modified)
        current = Entry(
            name: Array(name.utf8), crc: 0, size: size, compressedSize: 0, offset: offset, mode: mode, time: time, date: date,
            zip64: false, method: 0, compressible: compressible && level != nil && size > 0)
        crc = CRC32()
        written = 0
        pending = Data()
        decided = false
        deflater = nil
    }

    /// Appends bytes to the current entry.
    func write(_ data: Data) async throws {
        crc.update(data)
        written += UInt64(data.count)
        if decided, deflater == nil {
            // Stored: passed on as it is, without a copy.
            current?.compressedSize += UInt64(data.count)
            try await emit(data)
            return
        }
        pending.append(data)
        if !decided {
            guard pending.count >= Self.sampleSize else { return }
            try await decide()
        }
        try await drain(finishing: false)
    }

    /// Ends the current entry; its length must be what ``begin(name:size:mode:modified:compressible:)`` said.
    func end() async throws {
        guard current != nil else { return }
        if !decided { try await decide() }
        try await drain(finishing: true)
        guard var entry = current else { return }
        guard written == entry.size else {
            throw BunkerError(.integrity, "Entry \(String(decoding: entry.name, as: UTF8.self)) holds \(written) bytes, not the \(entry.size) expected.")
        }
        entry.crc = crc.value
        var descriptor = ByteWriter()
        descriptor.u32(0x0807_4b50)
        descriptor.u32(entry.crc)
        if entry.zip64 {
            descriptor.u64(entry.compressedSize)
            descriptor.u64(entry.size)
        } else {
            descriptor.u32(UInt32(entry.compressedSize))
            descriptor.u32(UInt32(entry.size))
        }
        try await emit(descriptor.data)
        entries.append(entry)
        current = nil
        deflater = nil
    }

    /// Chooses the current entry's method from its sample and writes its local header.
    private func decide() async throws {
        guard var entry = current else { return }
        let sample = pending.prefix(Self.sampleSize)
        if entry.compressible, let level, try Deflater.worthDeflating(Data(sample), level: level) {
            entry.method = 8
            deflater = try Deflater(level: level)
        }
        // Deflate can grow incompressible input a little: ZIP64 well before 4 GiB then.
        entry.zip64 = (entry.method == 8 ? entry.size + entry.size / 64 + (1 << 20) : entry.size) >= 0xFFFF_FFFF
        current = entry
        decided = true
        var header = ByteWriter()
        header.u32(0x0403_4b50)
        header.u16(entry.zip64 ? 45 : 20)
        header.u16(0x0808)  // data descriptor follows; UTF-8 names
        header.u16(entry.method)
        header.u16(entry.time)
        header.u16(entry.date)
        header.u32(0)  // CRC-32: in the data descriptor
        header.u32(entry.zip64 ? 0xFFFF_FFFF : 0)
        header.u32(entry.zip64 ? 0xFFFF_FFFF : 0)
        header.u16(UInt16(entry.name.count))
        header.u16(entry.zip64 ? 20 : 0)
        header.bytes(entry.name)
        if entry.zip64 {
            header.u16(0x0001)
            header.u16(16)
            header.u64(0)
            header.u64(0)
        }
        try await emit(header.data)
    }

    /// Writes what is pending of the current entry: all of it when stored; whole blocks of
    /// ``sampleSize`` (and, `finishing`, the rest and deflate's end) when deflated.
    private func drain(finishing: Bool) async throws {
        guard let deflater else {
            let data = pending
            pending = Data()
            current?.compressedSize += UInt64(data.count)
            if !data.isEmpty { try await emit(data) }
            return
        }
        var start = pending.startIndex
        while pending.endIndex - start >= Self.sampleSize {
            let block = pending[start..<start + Self.sampleSize]
            start += Self.sampleSize
            let last = finishing && start == pending.endIndex
            try await emitCompressed(deflater.deflate(Data(block), finish: last))
            if last {
                pending = Data()
                return
            }
        }
        pending = Data(pending[start...])
        if finishing {
            let rest = pending
            pending = Data()
            try await emitCompressed(deflater.deflate(rest, finish: true))
        }
    }

    private func emitCompressed(_ data: Data) async throws {
        current?.compressedSize += UInt64(data.count)
        if !data.isEmpty { try await emit(data) }
    }

    /// Writes the central directory and passes on what is gathered; the archive is complete
    /// after this. Returns the SHA-256 of every byte of the archive, in hex.
    @discardableResult
    func finish() async throws -> String {
        let directoryStart = offset
        for entry in entries {
            let bigSize = entry.zip64 || entry.size >= 0xFFFF_FFFF || entry.compressedSize >= 0xFFFF_FFFF
            let bigOffset = entry.offset >= 0xFFFF_FFFF
            var extra = ByteWriter()
            if bigSize || bigOffset {
                extra.u16(0x0001)
                extra.u16(UInt16((bigSize ? 16 : 0) + (bigOffset ? 8 : 0)))
                if bigSize {
                    extra.u64(entry.size)
                    extra.u64(entry.compressedSize)
                }
                if bigOffset { extra.u64(entry.offset) }
            }
            var record = ByteWriter()
            record.u32(0x0201_4b50)
            record.u16(3 << 8 | 45)  // made by: Unix, ZIP 4.5
            record.u16(bigSize || bigOffset ? 45 : 20)
            record.u16(0x0808)
            record.u16(entry.method)
            record.u16(entry.time)
            record.u16(entry.date)
            record.u32(entry.crc)
            record.u32(bigSize ? 0xFFFF_FFFF : UInt32(entry.compressedSize))
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
        return ID(digest: digest.finalize()).hex
    }

    /// Appends to the archive: gathered while small, passed on when the buffer fills (a large
    /// piece of an entry is passed on as it is, without a copy).
    private func emit(_ data: Data) async throws {
        offset += UInt64(data.count)
        digest.update(data: data)
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

/// CRC-32 (IEEE 802.3, as ZIP uses), by zlib's `crc32`, linked for deflate anyway.
struct CRC32 {
    private var state: UInt = 0
    var value: UInt32 { UInt32(truncatingIfNeeded: state) }

    mutating func update(_ data: Data) {
        data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            // zlib takes a 32-bit length: pieces of at most 1 GiB.
            var done = 0
            while done < buffer.count {
                let length = min(buffer.count - done, 1 << 30)
                state = CZlib.crc32(state, base + done, UInt32(length))
                done += length
            }
        }
    }
}
