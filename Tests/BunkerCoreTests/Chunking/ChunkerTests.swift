@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct ChunkerTests {
    static let parameters = ChunkerParameters(minSize: 4 << 10, averageSize: 16 << 10, maxSize: 64 << 10, seed: 99)

    /// Cuts `data` and returns the chunk lengths.
    static func cut(_ data: Data, parameters: ChunkerParameters = parameters) throws -> [Int] {
        try chunks(data, parameters: parameters).map(\.count)
    }

    /// Cuts `data`, read `readSize` bytes at a time (odd sizes exercise the refills), and returns
    /// the chunks.
    static func chunks(_ data: Data, parameters: ChunkerParameters = parameters, fixedSize: Int? = nil, readSize: Int = 7919) throws -> [Data] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: parameters.maxSize * 2, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        var chunker = Chunker(parameters: parameters, gear: Chunker.gearTable(seed: parameters.seed), buffer: buffer, fixedSize: fixedSize) { target in
            let n = min(target.count, readSize, data.count - offset)
            data.withUnsafeBytes { src in
                target.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
            }
            offset += n
            return n
        }
        var chunks: [Data] = []
        while let chunk = try chunker.next({ Data($0) }) { chunks.append(chunk) }
        return chunks
    }

    @Test func chunksRespectMinimumAndMaximumAndCoverTheInput() throws {
        var rng = SeededGenerator(seed: 1)
        let data = rng.bytes(3 << 20)
        let lengths = try Self.cut(data)
        #expect(lengths.reduce(0, +) == data.count)
        #expect(lengths.dropLast().allSatisfy { $0 >= 4 << 10 && $0 <= 64 << 10 })
        let average = Double(data.count) / Double(lengths.count)
        #expect(average > 8192 && average < 32768, "average \(average) is near 16 KiB")
    }

    /// Page-aligned chunks (a database's) have exactly their size, whether the reads bring less
    /// than a chunk or many at once, and cover the input in order.
    @Test func fixedSizeChunksAreExactWhateverTheReads() throws {
        var rng = SeededGenerator(seed: 4)
        let data = rng.bytes((1 << 20) + 12_345)
        for readSize in [1_000, 4_095, 8_192, 7_919, 200_000, 1 << 20] {
            let chunks = try Self.chunks(data, fixedSize: 8_192, readSize: readSize)
            #expect(chunks.dropLast().allSatisfy { $0.count == 8_192 }, "reads of \(readSize)")
            #expect(chunks.last?.count == data.count % 8_192, "reads of \(readSize)")
            #expect(chunks.reduce(into: Data()) { $0.append($1) } == data, "reads of \(readSize)")
        }
    }

    @Test func anInsertionShiftsNoLaterBoundary() throws {
        var rng = SeededGenerator(seed: 2)
        let data = rng.bytes(2 << 20)
        var changed = data
        changed.insert(contentsOf: Data("inserted bytes".utf8), at: 500_000)
        func boundaries(_ lengths: [Int]) -> [Int] {
            var sum = 0
            return lengths.map { sum += $0; return sum }
        }
        let before = Set(boundaries(try Self.cut(data)).filter { $0 > 600_000 }.map { $0 + 14 })
        let after = Set(boundaries(try Self.cut(changed)).filter { $0 > 600_000 })
        #expect(before == after)
    }

    @Test func theSeedChangesTheBoundaries() throws {
        var rng = SeededGenerator(seed: 3)
        let data = rng.bytes(1 << 20)
        var other = Self.parameters
        other.seed = 100
        #expect(try Self.cut(data) != Self.cut(data, parameters: other))
    }

    @Test func smallAndEmptyInputs() throws {
        #expect(try Self.cut(Data()) == [])
        #expect(try Self.cut(Data(repeating: 7, count: 100)) == [100])
        // Constant data never matches the mask: max-size chunks.
        #expect(try Self.cut(Data(repeating: 0, count: 200 << 10)) == [64 << 10, 64 << 10, 64 << 10, 8 << 10])
    }
}
