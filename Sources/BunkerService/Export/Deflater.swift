import BunkerCore
import CZlib
import Foundation

/// A raw deflate stream (RFC 1951, no zlib header: what a ZIP entry of method 8 holds) over zlib.
///
/// The output depends only on the bytes, the level and zlib's version, never on how the input
/// was split: ``ZipWriter`` also feeds it in fixed blocks, so that an entry's bytes are the same
/// whether they came from repository chunks (up to 2 or 4 MiB) or 1 MiB file reads.
final class Deflater {
    /// The z_stream lives at a fixed address: zlib's state points back at it.
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var output = [UInt8](repeating: 0, count: 64 << 10)

    /// The version of the zlib linked, part of an archive's format (another zlib may choose
    /// other matches for the same bytes).
    static var zlibVersion: String { String(cString: CZlib.zlibVersion()) }

    init(level: Int) throws {
        stream.initialize(to: z_stream())
        guard czlib_deflate_init_raw(stream, Int32(level)) == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw BunkerError(.invalidArgument, "zlib could not start a deflate stream at level \(level) (a level from 1 to 9, and memory for it, are needed).")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Compresses `input` and returns what zlib has ready; with `finish`, ends the stream and
    /// returns everything left.
    func deflate(_ input: Data, finish: Bool) -> Data {
        var result = Data()
        input.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            let base = bytes.bindMemory(to: UInt8.self).baseAddress
            stream.pointee.next_in = UnsafeMutablePointer(mutating: base)
            stream.pointee.avail_in = UInt32(bytes.count)
            let capacity = output.count
            output.withUnsafeMutableBufferPointer { out in
                while true {
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = UInt32(capacity)
                    let status = CZlib.deflate(stream, finish ? Z_FINISH : Z_NO_FLUSH)
                    let produced = capacity - Int(stream.pointee.avail_out)
                    result.append(out.baseAddress!, count: produced)
                    // Z_BUF_ERROR only says no progress was possible: all input taken, nothing to flush.
                    precondition(status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR, "deflate failed: \(status)")
                    if finish ? status == Z_STREAM_END : (stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0) { break }
                }
            }
            stream.pointee.next_in = nil
        }
        return result
    }

    /// Whether deflating is worth it for an entry that starts with `sample` (its first
    /// ``ZipWriter/sampleSize`` bytes, or all of it if shorter): it is if deflate saves at least
    /// 1/20 of the sample. Already-compressed data (JPEG, PNG, zstd, most DICOM transfer syntaxes)
    /// does not, and is stored. A function of the sample's bytes only, so the same entry always
    /// gets the same method.
    static func worthDeflating(_ sample: Data, level: Int) throws -> Bool {
        guard !sample.isEmpty else { return false }
        let compressed = try Deflater(level: level).deflate(sample, finish: true)
        return compressed.count + sample.count / 20 <= sample.count
    }
}
