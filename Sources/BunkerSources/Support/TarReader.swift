import BunkerCore
import Foundation

/// Where a tar archive's bytes come from: a helper's output pipe, or bytes in memory.
protocol TarInput: Sendable {
    /// Suspends until `count` bytes can be read without blocking, or the input has ended.
    func waitFor(_ count: Int) async throws
    /// Reads what is there, up to `buffer.count` bytes; 0 only at the end. May block when
    /// nothing is there yet.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A tar archive read as it streams, one entry at a time, without a copy on disk.
///
/// Reads POSIX ustar headers (name and prefix), pax extended headers (`path`, `linkpath`,
/// `size`, `mtime`; a global header is skipped) and GNU long names (`L`, `K`), sizes in octal or
/// GNU base-256. Regular files, directories and symlinks become ``StreamedEntry`` values; a hard
/// link or a device is refused, since a data directory holds none. Every header's checksum is
/// checked, and an archive that ends before its end-of-archive (zero) block is an error: a cut stream must
/// never pass for a whole one.
///
/// The reader keeps one buffer of its own and refills it with large reads, so that the many
/// small headers and files of a data directory cost one read of the input per megabyte.
/// It is read by one task at a time, in order (the archiver reads an ``EntryStream`` so), which is
/// why it is `@unchecked Sendable`.
final class TarReader: EntryStream, @unchecked Sendable {
    private let input: any TarInput
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    /// Content bytes of the current entry not yet read, then its padding to a block.
    private var remaining: UInt64 = 0
    private var padding = 0
    /// The current entry's path, if its content is kept (see ``keep``).
    private var keeping: String?
    private var ended = false
    /// Whether the input has ended.
    private var inputEnded = false
    /// Paths whose content is also kept in ``kept`` (small files such as `backup_label`).
    let keep: Set<String>
    /// The content of the kept files read so far, by path.
    private(set) var kept: [String: Data] = [:]
    /// The page size of files whose content is cut at pages, by the path they are under.
    let pageSizes: (_ path: [String]) -> Int?
    /// Checks the producer once the archive has ended (pg_basebackup's exit status).
    private let finishInput: () async throws -> Void

    static let capacity = 1 << 20

    init(input: any TarInput, keep: Set<String> = [], pageSizes: @escaping (_ path: [String]) -> Int? = { _ in nil },
         finish: @escaping () async throws -> Void = {}) {
        self.input = input
        self.keep = keep
        self.pageSizes = pageSizes
        self.finishInput = finish
        buffer = .allocate(byteCount: Self.capacity, alignment: 16)
    }

    deinit { buffer.deallocate() }

    private var buffered: Int { end - start }

    // MARK: - Entries

    func nextEntry() async throws -> (StreamedEntry, (any ByteStream)?)? {
        do {
            return try await readEntry()
        } catch {
            // An archive cut short is most often a producer that failed: its error says why.
            // (Only once its output has ended: a producer still writing would never exit.)
            if inputEnded { try await finishInput() }
            throw error
        }
    }

    private func readEntry() async throws -> (StreamedEntry, (any ByteStream)?)? {
        guard !ended else { return nil }
        try await skipRest()
        var pax: [String: String] = [:]
        var longName: String?
        var longLink: String?
        while true {
            let header = try await bytes(512, what: "a header")
            if header.allSatisfy({ $0 == 0 }) {
                ended = true
                return nil
            }
            try Self.checkSum(header)
            let type = header[156]
            let size = try Self.size(header, pax: pax)
            switch type {
            case UInt8(ascii: "x"):
                pax.merge(Self.paxRecords(try await content(size)), uniquingKeysWith: { $1 })
                continue
            case UInt8(ascii: "g"):
                _ = try await content(size)
                continue
            case UInt8(ascii: "L"):
                longName = Self.string(try await content(size)[...])
                continue
            case UInt8(ascii: "K"):
                longLink = Self.string(try await content(size)[...])
                continue
            default:
                break
            }
            var name = pax["path"] ?? longName ?? Self.string(header[0..<100])
            if pax["path"] == nil && longName == nil, header[257..<262].elementsEqual("ustar".utf8) {
                let prefix = Self.string(header[345..<500])
                if !prefix.isEmpty { name = prefix + "/" + name }
            }
            let path = name.split(separator: "/").map(String.init).filter { $0 != "." }
            let mode = UInt32(Self.octal(header[100..<108]) ?? 0o600) & 0o7777
            let mtime = pax["mtime"].flatMap { Double($0) }.map { Int64($0 * 1e9) } ?? Int64(Self.octal(header[136..<148]) ?? 0) * 1_000_000_000
            let uid = UInt32(truncatingIfNeeded: Self.octal(header[108..<116]) ?? 0)
            let gid = UInt32(truncatingIfNeeded: Self.octal(header[116..<124]) ?? 0)
            let kind: Node.Kind
            switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .file
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "2"): kind = .symlink
            default:
                throw BunkerError(.sourceIO, "The tar archive holds \(name) of type \(Character(UnicodeScalar(type))), which a PostgreSQL data directory never holds (a hard link or a device); nothing was stored.")
            }
            if path.isEmpty {
                // The archive's root directory ("./"): the stream's own directory.
                try await skip(size, padded: true)
                pax = [:]
                continue
            }
            var entry = StreamedEntry(path: path, type: kind, mode: mode, mtimeNanoseconds: mtime, uid: uid, gid: gid)
            if kind == .symlink {
                entry.linkTarget = pax["linkpath"] ?? longLink ?? Self.string(header[157..<257])
                try await skip(size, padded: true)
                return (entry, nil)
            }
            if kind == .directory {
                try await skip(size, padded: true)
                return (entry, nil)
            }
            entry.pageSize = pageSizes(path)
            remaining = size
            padding = Int((512 - size % 512) % 512)
            let joined = path.joined(separator: "/")
            keeping = keep.contains(joined) ? joined : nil
            if let keeping { kept[keeping] = Data() }
            return (entry, TarEntryContent(reader: self) as any ByteStream)
        }
    }

    func finish() async throws {
        if !ended {
            throw BunkerError(.sourceIO, "The tar archive was not read to its end.")
        }
        try await finishInput()
    }

    // MARK: - Content of the current entry

    /// Waits until `count` bytes of the current entry (or all it has left) can be read.
    func prepareContent(_ count: Int) async throws {
        let wanted = Int(min(UInt64(min(count, Self.capacity)), remaining))
        guard wanted > 0 else { return }
        if try await !fill(wanted) {
            try await finishInput()
            throw truncated("the content of an entry")
        }
    }

    /// Reads the current entry's content; 0 at its end.
    func readContent(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        guard remaining > 0, target.count > 0 else { return 0 }
        if buffered == 0 {
            compact()
            let n = try input.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end..<Self.capacity]))
            guard n > 0 else { throw truncated("the content of an entry") }
            end += n
        }
        let n = Int(min(UInt64(min(target.count, buffered)), remaining))
        target.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: n)
        if let keeping { kept[keeping]!.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start..<start + n])) }
        start += n
        remaining -= UInt64(n)
        return n
    }

    /// Whether the current entry's content was read to its end.
    var contentEnded: Bool { remaining == 0 }

    // MARK: - Reading

    /// Skips what is left of the current entry and its padding.
    private func skipRest() async throws {
        if remaining > 0 { try await skip(remaining, padded: false) }
        remaining = 0
        if padding > 0 { try await skip(UInt64(padding), padded: false) }
        padding = 0
        keeping = nil
    }

    /// Skips `count` bytes, and the padding to the next block when `padded`.
    private func skip(_ count: UInt64, padded: Bool) async throws {
        var left = padded ? (count + 511) / 512 * 512 : count
        while left > 0 {
            let step = Int(min(left, UInt64(Self.capacity)))
            guard try await fill(min(step, Self.capacity / 2)) || buffered > 0 else { throw truncated("an entry") }
            let n = min(step, buffered)
            start += n
            left -= UInt64(n)
        }
    }

    /// An entry's whole content and its padding (pax records, long names).
    private func content(_ size: UInt64) async throws -> [UInt8] {
        guard size <= UInt64(Self.capacity / 2) else {
            throw BunkerError(.sourceIO, "The tar archive holds an extended header of \(size) bytes, more than Bunker reads.")
        }
        let data = try await bytes(Int(size), what: "an extended header")
        try await skip(UInt64((512 - Int(size) % 512) % 512), padded: false)
        return data
    }

    private func bytes(_ count: Int, what: String) async throws -> [UInt8] {
        guard try await fill(count) else { throw truncated(what) }
        let result = [UInt8](UnsafeRawBufferPointer(rebasing: buffer[start..<start + count]))
        start += count
        return result
    }

    /// Buffers at least `count` bytes; false when the input ended first.
    private func fill(_ count: Int) async throws -> Bool {
        while buffered < count {
            compact()
            try await input.waitFor(count - buffered)
            let n = try input.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end..<Self.capacity]))
            if n == 0 {
                inputEnded = true
                return false
            }
            end += n
        }
        return true
    }

    /// Moves the unread bytes to the front, so that a refill can read a large block.
    private func compact() {
        guard start > 0 else { return }
        let count = buffered
        if count > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: count) }
        start = 0
        end = count
    }

    private func truncated(_ what: String) -> BunkerError {
        BunkerError(.sourceIO, "The tar archive ended in the middle of \(what): the stream was cut short, and nothing was stored.")
    }

    // MARK: - Header fields

    static func checkSum(_ header: [UInt8]) throws {
        let recorded = octal(header[148..<156])
        var sum = 0
        for (i, byte) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(byte) }
        guard recorded == UInt64(sum) else {
            throw BunkerError(.sourceIO, "A tar header's checksum does not match: the stream is not a tar archive, or it is damaged; nothing was stored.")
        }
    }

    static func size(_ header: [UInt8], pax: [String: String]) throws -> UInt64 {
        if let text = pax["size"], let size = UInt64(text) { return size }
        let field = header[124..<136]
        if field.first! & 0x80 != 0 {
            // GNU base-256: big-endian, the first byte's top bit a flag.
            var value: UInt64 = UInt64(field.first! & 0x7F)
            for byte in field.dropFirst() { value = value << 8 | UInt64(byte) }
            return value
        }
        guard let size = octal(field) else {
            throw BunkerError(.sourceIO, "A tar header holds a size that is not a number; nothing was stored.")
        }
        return size
    }

    /// An octal field: digits ended by a space or NUL; nil when empty or not octal.
    static func octal(_ field: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        for byte in field {
            if byte == 0 || byte == 32 {
                if digits > 0 { break }
                continue
            }
            guard byte >= 48, byte <= 55 else { return nil }
            value = value * 8 + UInt64(byte - 48)
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    /// A NUL-ended text field.
    static func string(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// pax records: `LENGTH KEY=VALUE\n`, LENGTH counting the whole record.
    static func paxRecords(_ data: [UInt8]) -> [String: String] {
        var records: [String: String] = [:]
        var i = 0
        while i < data.count {
            guard let space = data[i...].firstIndex(of: 32), let length = Int(String(decoding: data[i..<space], as: UTF8.self)),
                  length > 0, i + length <= data.count else { break }
            let record = data[(space + 1)..<(i + length - 1)]
            if let equals = record.firstIndex(of: UInt8(ascii: "=")) {
                records[String(decoding: record[record.startIndex..<equals], as: UTF8.self)] = String(decoding: record[(equals + 1)...], as: UTF8.self)
            }
            i += length
        }
        return records
    }
}

/// The content of a tar entry, read through its ``TarReader``.
final class TarEntryContent: ByteStream, @unchecked Sendable {
    private let reader: TarReader

    init(reader: TarReader) {
        self.reader = reader
    }

    func prepareRead(_ count: Int) async throws {
        try await reader.prepareContent(count)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try reader.readContent(into: buffer)
    }

    func finish() throws {
        guard reader.contentEnded else {
            throw BunkerError(.sourceIO, "A file of the tar archive was not read to its end.")
        }
    }
}

/// A helper's standard output as a ``TarInput``.
struct ChildOutput: TarInput {
    let child: ChildProcess

    func waitFor(_ count: Int) async throws {
        await child.waitForOutput(count)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try child.readOutput(into: buffer)
    }
}

/// Bytes in memory as a ``TarInput`` (tests, small archives).
final class DataInput: TarInput, @unchecked Sendable {
    private let data: Data
    private var offset = 0

    init(_ data: Data) {
        self.data = data
    }

    func waitFor(_ count: Int) async throws {}

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, data.count - offset)
        guard n > 0 else { return 0 }
        data.copyBytes(to: buffer.bindMemory(to: UInt8.self), from: offset..<offset + n)
        offset += n
        return n
    }
}
