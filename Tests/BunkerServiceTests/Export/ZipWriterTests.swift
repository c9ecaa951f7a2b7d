import BunkerCore
import BunkerTesting
import Crypto
import Foundation
import Synchronization
import Testing

@testable import BunkerService

/// The ZIP writer alone: its bytes depend on the entries, not on how their bytes arrive, and an
/// entry past 4 GiB is still a ZIP64 archive `unzip` and Python read.
@Suite struct ZipWriterTests {
    /// An archive of one compressible entry, its bytes given in pieces of `piece` bytes.
    private func archive(_ content: Data, pieces piece: Int, level: Int?) async throws -> (bytes: Data, sha256: String) {
        let collected = Mutex(Data())
        let zip = ZipWriter(level: level) { data in collected.withLock { $0.append(data) } }
        try await zip.begin(name: "report.txt", size: UInt64(content.count), mode: 0o100644, modified: Date(timeIntervalSince1970: 1_700_000_000), compressible: true)
        var start = content.startIndex
        while start < content.endIndex {
            let end = min(start + piece, content.endIndex)
            try await zip.write(content[start..<end])
            start = end
        }
        try await zip.end()
        let sha256 = try await zip.finish()
        return (collected.withLock { $0 }, sha256)
    }

    @Test func theBytesDoNotDependOnHowTheContentArrives() async throws {
        let content = Data((1...30_000).map { "line \($0): blood pressure normal\n" }.joined().utf8)
        let whole = try await archive(content, pieces: content.count, level: 6)
        #expect(whole.sha256 == ID(digest: SHA256.hash(data: whole.bytes)).hex)
        #expect(whole.bytes.count < content.count / 3, "deflated")
        for piece in [1000, ZipWriter.sampleSize - 1, ZipWriter.sampleSize + 1, 1 << 20] {
            let split = try await archive(content, pieces: piece, level: 6)
            #expect(split.bytes == whole.bytes, "pieces of \(piece) bytes")
        }
        #expect(try await archive(content, pieces: 4096, level: 1).bytes != whole.bytes, "the level is part of the bytes")
        try await withTemporaryDirectory { dir in
            try whole.bytes.write(to: URL(fileURLWithPath: dir + "/a.zip"))
            let read = try shell("unzip -p a.zip report.txt | sha256sum", in: dir)
            #expect(read.output.hasPrefix(ID(digest: SHA256.hash(data: content)).hex), "\(read.output)")
            let sum = try shell("sha256sum a.zip", in: dir)
            #expect(sum.output.hasPrefix(whole.sha256), "finish() returns what sha256sum prints: \(sum.output)")
        }
    }

    @Test func anEntryPastFourGiBIsZip64() async throws {
        try await withTemporaryDirectory { dir in
            let size: UInt64 = (4 << 30) + (64 << 10) + 3
            #expect(FileManager.default.createFile(atPath: dir + "/big.zip", contents: nil))
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/big.zip"))
            let zip = ZipWriter(level: 1) { data in try handle.write(contentsOf: data) }
            try await zip.begin(name: "small.txt", size: 5, mode: 0o100644, modified: Date(timeIntervalSince1970: 1_700_000_000), compressible: true)
            try await zip.write(Data("hello".utf8))
            try await zip.end()
            try await zip.begin(name: "zeros.bin", size: size, mode: 0o100644, modified: Date(timeIntervalSince1970: 1_700_000_000), compressible: true)
            let block = Data(count: 4 << 20)
            var left = size
            while left > 0 {
                let n = Int(min(left, UInt64(block.count)))
                try await zip.write(n == block.count ? block : block.prefix(n))
                left -= UInt64(n)
            }
            try await zip.end()
            try await zip.finish()
            try handle.close()

            let script = """
                import json, sys, zipfile, zlib
                z = zipfile.ZipFile(sys.argv[1])
                out = {}
                for i in z.infolist():
                    crc = 0
                    with z.open(i) as f:
                        while True:
                            b = f.read(1 << 24)
                            if not b: break
                            crc = zlib.crc32(b, crc)
                    out[i.filename] = [i.file_size, i.compress_type, crc == i.CRC]
                print(json.dumps(out))
                """
            try script.write(toFile: dir + "/read.py", atomically: true, encoding: .utf8)
            let read = try shell("python3 read.py big.zip", in: dir)
            #expect(read.status == 0, "\(read.output)")
            let entries = try JSONSerialization.jsonObject(with: Data(read.output.utf8)) as? [String: [Any]]
            #expect((entries?["zeros.bin"]?[0] as? NSNumber)?.uint64Value == size)
            #expect((entries?["zeros.bin"]?[1] as? NSNumber)?.intValue == 8)
            #expect(entries?["zeros.bin"]?[2] as? Bool == true, "its CRC-32 holds")
            #expect(entries?["small.txt"]?[2] as? Bool == true)
        }
    }
}
