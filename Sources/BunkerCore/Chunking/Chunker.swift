import Foundation

/// The content-defined chunking parameters of a repository, stored in its config.
public struct ChunkerParameters: Codable, Sendable, Equatable {
    /// No chunk is smaller, except a file's last.
    public var minSize: Int
    /// The size chunks are normalized towards (a power of two).
    public var averageSize: Int
    /// No chunk is larger.
    public var maxSize: Int
    /// Seeds the gear table, so that chunk boundaries do not reveal content to the storage.
    public var seed: UInt64
    /// Chunk size for database files (SQLite), cut at page boundaries instead of by content; nil
    /// chunks them like any file.
    public var pageAlignedSize: Int?

    enum CodingKeys: String, CodingKey {
        case seed
        case minSize = "min_size"
        case averageSize = "average_size"
        case maxSize = "max_size"
        case pageAlignedSize = "page_aligned_size"
    }

    public init(minSize: Int, averageSize: Int, maxSize: Int, seed: UInt64, pageAlignedSize: Int? = 8192) {
        self.minSize = minSize
        self.averageSize = averageSize
        self.maxSize = maxSize
        self.seed = seed
        self.pageAlignedSize = pageAlignedSize
    }

    /// 512 KiB / 1 MiB / 2 MiB with a random seed; databases in 8 KiB chunks, two 4 KiB pages.
    /// restic caps chunks at 8 MiB. Each file being read holds a buffer of twice the cap: at 4 MiB
    /// the two buffers were 16 MB of a first backup's 104 MiB peak, and 2 MiB halves them. Past
    /// the average a cut is sixteen times likelier than before it (one in 256 KiB), so about
    /// e^-4, 2 %, of chunks run on to 2 MiB; the benchmark's 1 GiB repository kept its size. Measured on
    /// the benchmark's 1 GiB clinic set (bench/README.md): against 4 KiB, 8 KiB halves the chunks
    /// to index and list (the repository 1% smaller, the in-memory index and the no-change backup
    /// lighter) while a day of scattered row changes stores 36 instead of 31 MiB; 16 and 64 KiB
    /// chunks store 2–3× more per day than 4 KiB.
    public static func standard() -> ChunkerParameters {
        ChunkerParameters(minSize: 512 << 10, averageSize: 1 << 20, maxSize: 2 << 20, seed: UInt64.random(in: 0...UInt64.max))
    }

    /// The chunk size for a database with pages of `pageSize` bytes: a whole number of pages.
    func pageAlignedChunkSize(pageSize: Int) -> Int? {
        guard let size = pageAlignedSize, pageSize > 0 else { return nil }
        return min(maxSize, max(pageSize, size / pageSize * pageSize))
    }

    func validate() throws {
        guard minSize >= 64, minSize < averageSize, averageSize < maxSize, averageSize & (averageSize - 1) == 0,
              maxSize <= 64 << 20, (pageAlignedSize ?? 512) >= 512, (pageAlignedSize ?? 0) <= maxSize else {
            throw BunkerError(.unsupportedFormat, "Invalid chunker parameters min=\(minSize) avg=\(averageSize) max=\(maxSize).")
        }
    }
}

/// FastCDC content-defined chunking over a stream.
///
/// A gear hash (`h = h << 1 + gear[byte]`) rolls over the last 64 bytes; a cut is made where its
/// high bits are zero. Below the average size a stricter mask (two more bits) applies, above it a
/// looser one (two fewer), which pulls chunk sizes towards the average ("normalized chunking",
/// Xia et al., 2016). No cut is looked for in the first `minSize` bytes. Because a boundary
/// depends only on the 64 bytes before it, inserting data shifts no boundary beyond the next one.
///
/// The chunker reads into one buffer of at least `2 × maxSize` bytes that the caller lends it
/// (and reuses across files), so memory stays bounded whatever the file's size.
public struct Chunker {
    private let parameters: ChunkerParameters
    private let gear: [UInt64]
    private let maskSmall: UInt64
    private let maskLarge: UInt64
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var eof = false
    private let read: (UnsafeMutableRawBufferPointer) throws -> Int
    private let fixedSize: Int?

    /// Chunks whatever `read` yields; `read` fills the buffer it is given and returns the count,
    /// 0 at the end.
    ///
    /// With `fixedSize`, every chunk but the last has exactly that size: page-aligned chunking for
    /// databases, whose pages change in place and never shift.
    public init(parameters: ChunkerParameters, gear: [UInt64], buffer: UnsafeMutableRawBufferPointer, fixedSize: Int? = nil,
                read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) {
        self.fixedSize = fixedSize
        precondition(buffer.count >= parameters.maxSize * 2, "the chunker needs twice the maximum chunk size")
        self.parameters = parameters
        self.gear = gear
        let bits = Int(log2(Double(parameters.averageSize)).rounded())
        self.maskSmall = Chunker.highMask(bits: bits + 2)
        self.maskLarge = Chunker.highMask(bits: bits - 2)
        self.buffer = buffer
        self.read = read
    }

    private static func highMask(bits: Int) -> UInt64 {
        bits >= 64 ? .max : ((UInt64(1) << UInt64(bits)) - 1) << UInt64(64 - bits)
    }

    /// The 256-entry gear table for a seed (splitmix64).
    public static func gearTable(seed: UInt64) -> [UInt64] {
        var state = seed
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Ensures that a whole chunk of the largest size the next cut can make (or the rest of the
    /// input) is buffered.
    private mutating func fill() throws {
        // Fixed-size chunks need only their own size: the move to the front below then copies
        // less than one page chunk per buffer of input, where waiting for a maximum chunk
        // copied every byte of a database once more (5 % of a 10 GiB day-change backup's CPU).
        let needed = fixedSize ?? parameters.maxSize
        if eof || end - start >= needed { return }
        if buffer.count - start < needed {
            // Too little room after `start`: move the remainder (less than one chunk) to the
            // front. With a buffer of two maximum chunks this happens once per maximum chunk of
            // content-defined input, so each byte is copied at most about once.
            if end > start {
                buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: end - start)
            }
            end -= start
            start = 0
        }
        while !eof && end < buffer.count && end - start < needed {
            let n = try read(UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            if n == 0 { eof = true } else { end += n }
        }
    }

    /// Calls `body` with the next chunk's bytes (valid only during the call); false at the end.
    public mutating func next<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try fill()
        let available = end - start
        if available == 0 { return nil }
        let length = cut(UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
        let chunk = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + length)])
        start += length
        return try body(chunk)
    }

    private func cut(_ data: UnsafeRawBufferPointer) -> Int {
        let n = data.count
        if let fixedSize { return min(n, fixedSize) }
        if n <= parameters.minSize { return n }
        let normal = min(parameters.averageSize, n)
        let limit = min(parameters.maxSize, n)
        var hash: UInt64 = 0
        var i = parameters.minSize
        return gear.withUnsafeBufferPointer { g in
            while i < normal {
                hash = (hash << 1) &+ g[Int(data[i])]
                if hash & maskSmall == 0 { return i + 1 }
                i += 1
            }
            while i < limit {
                hash = (hash << 1) &+ g[Int(data[i])]
                if hash & maskLarge == 0 { return i + 1 }
                i += 1
            }
            return limit
        }
    }
}
