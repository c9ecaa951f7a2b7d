import Foundation

/// WAL segments for tests that need archived WAL without a PostgreSQL server: the page header
/// `bunker wal push` checks (magic, timeline, address, system identifier, sizes) and some content.
public enum FakeWal {
    /// The system identifier of the fake cluster.
    public static let systemIdentifier: UInt64 = 7_312_345_678_901_234_567

    /// The name of segment `number` of timeline 1 (1 MiB segments: at most 4096 per log file).
    public static func segmentName(_ number: Int, timeline: Int = 1) -> String {
        String(format: "%08X%08X%08X", timeline, number >> 12, number & 0xFFF)
    }

    /// A 1 MiB segment (the smallest size initdb allows) with a long page header and
    /// compressible content; `filler` changes the content, not the header.
    public static func segment(number: Int, filler: UInt8 = 0, systemIdentifier: UInt64 = FakeWal.systemIdentifier) -> Data {
        var data = Data(count: 1 << 20)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { data.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0) }
        }
        put(UInt16(0xD110), at: 0)
        put(UInt16(0x0002), at: 2)
        put(UInt32(1), at: 4)
        put(UInt64(number) << 20, at: 8)
        put(systemIdentifier, at: 24)
        put(UInt32(1 << 20), at: 32)
        put(UInt32(8192), at: 36)
        for i in stride(from: 64, to: 200_000, by: 97) { data[i] = UInt8(truncatingIfNeeded: i &+ number) ^ filler }
        return data
    }
}
