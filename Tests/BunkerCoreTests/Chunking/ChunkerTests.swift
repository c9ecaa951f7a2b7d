@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct ChunkerTests {
    static let parameters = ChunkerParameters(minSize: 4 << 10, averageSize: 16 << 10, maxSize: 64 << 10, seed: 99)

    /// Cuts `data` and returns the chunk lengths.
    static func cut(_ data: Data, parameters: ChunkerParameters = parameters) throws -> [Int] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: parameters.maxSize * 2, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        var chunker = Chunker(parameters: parameters, gear: Chunker.gearTable(seed: parameters.seed), buffer: buffer) { target in
            // Feed odd-sized reads to exercise refills.
            let n = min(target.count, 7919, data.count - offset)
            data.withUnsafeBytes { src in
                target.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
            }
            offset += n
            return n
        }
        var lengths: [Int] = []
        while let length = try chunker.next({ $0.count }) { lengths.append(length) }
        return lengths
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
