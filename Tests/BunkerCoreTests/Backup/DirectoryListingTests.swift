@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// A directory's listing, read with `getdents64`: every name, as bytes, sorted by them.
@Suite struct DirectoryListingTests {
    /// Names that look like `.` and `..` without being them, and bytes that are not UTF-8.
    static let tricky: [[UInt8]] = [
        Array(".hidden".utf8), Array("..x".utf8), Array("...".utf8), Array(".".utf8) + [0xFF],
        [0x80], [0xFF, 0x2E], Array("e\u{301}".utf8), Array("\u{E9}".utf8), Array("a".utf8),
        Array(repeating: 0x7A, count: 255),
    ]

    static func create(_ name: [UInt8], in dir: DirectoryHandle) {
        let fd = FileName.with(name) { openat(dir.fd, $0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        #expect(fd >= 0, "cannot create \(name)")
        close(fd)
    }

    @Test func aListingLongerThanOneReadHasEveryNameOnceInByteOrder() async throws {
        try await withTemporaryDirectory { dir in
            let handle = try DirectoryHandle(path: dir)
            // 3,000 names of 60 bytes take about 240 KB of records: several reads of the buffer.
            var expected = Self.tricky
            for i in 0..<3_000 { expected.append(Array(String(format: "record-%05d-", i).utf8) + Array(repeating: 0x71, count: 47)) }
            #expect(expected.count * 80 > 4 * DirectoryHandle.listingBufferSize)
            for name in expected.shuffled() { Self.create(name, in: handle) }
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: false)
            expected.append(Array("sub".utf8))

            let sorted = expected.sorted { $0.lexicographicallyPrecedes($1) }
            #expect(try handle.entries() == sorted)
            // A second listing of the same descriptor starts from the beginning again.
            #expect(try handle.entries() == sorted)
        }
    }

    @Test func anEmptyDirectoryListsNothing() async throws {
        try await withTemporaryDirectory { dir in
            let handle = try DirectoryHandle(path: dir)
            #expect(try handle.entries().isEmpty)
        }
    }

    @Test func aNameBecomesACStringOfItsBytes() {
        for name in Self.tricky + [[]] {
            let copy = FileName.with(name) { pointer in Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer) + 1)) }
            #expect(copy == name + [0])
        }
    }
}
