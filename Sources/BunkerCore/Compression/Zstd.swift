import CZstd
import Foundation

/// zstd compression with a reusable context; one instance per worker, not shared between tasks.
public final class ZstdCompressor {
    fileprivate let context: OpaquePointer
    /// The zstd level (1–19; 3 is zstd's own default).
    public let level: Int32

    public init(level: Int) {
        self.context = ZSTD_createCCtx()
        self.level = Int32(level)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `input`, or returns nil when the result would not be smaller.
    ///
    /// The output is written into memory of the worst-case size, which is then shrunk and
    /// handed to the returned `Data` without a copy: no buffer outlives the call.
    public func compress(_ input: UnsafeRawBufferPointer) -> Data? {
        let bound = ZSTD_compressBound(input.count)
        guard let out = malloc(bound) else { return nil }
        let size = ZSTD_compressCCtx(context, out, bound, input.baseAddress, input.count, level)
        guard ZSTD_isError(size) == 0, size < input.count, size > 0 else {
            free(out)
            return nil
        }
        let shrunk = realloc(out, size) ?? out
        return Data(bytesNoCopy: shrunk, count: size, deallocator: .free)
    }

    /// Compresses `input`, or returns nil when the result would not be smaller.
    public func compress(_ input: Data) -> Data? {
        input.withUnsafeBytes { compress($0) }
    }
}

/// One zstd frame compressed from input handed over piece by piece, for content too large to
/// hold whole (a directory listing of tens of MB, see ``TreeSaver``). It uses its compressor's
/// context until ``finish()``: the compressor serves nothing else meanwhile.
final class ZstdFrameWriter {
    private let compressor: ZstdCompressor
    private var output: UnsafeMutableRawPointer?
    private var capacity: Int
    private var count = 0
    private var failure: String?

    init(compressor: ZstdCompressor, expectedOutput: Int) {
        self.compressor = compressor
        capacity = max(expectedOutput, ZSTD_CStreamOutSize())
        output = malloc(capacity)
        if output == nil { failure = "no memory for \(capacity) bytes" }
        ZSTD_CCtx_reset(compressor.context, ZSTD_reset_session_and_parameters)
        ZSTD_CCtx_setParameter(compressor.context, ZSTD_c_compressionLevel, compressor.level)
    }

    deinit { free(output) }

    /// Compresses the next piece of the input.
    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        run(bytes, ZSTD_e_continue)
    }

    /// Ends the frame; the compressed bytes, owned by the returned `Data`.
    func finish() throws -> Data {
        run(UnsafeRawBufferPointer(start: nil, count: 0), ZSTD_e_end)
        guard failure == nil, let output else {
            throw BunkerError(.sourceIO, "zstd could not compress a directory listing: \(failure ?? "no output").")
        }
        self.output = nil
        let fitted = realloc(output, max(count, 1)) ?? output
        return Data(bytesNoCopy: fitted, count: count, deallocator: .free)
    }

    private func run(_ bytes: UnsafeRawBufferPointer, _ mode: ZSTD_EndDirective) {
        guard failure == nil else { return }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while true {
            if capacity - count < ZSTD_CStreamOutSize() {
                let larger = capacity * 2
                guard let grown = realloc(output, larger) else {
                    failure = "no memory for \(larger) bytes"
                    return
                }
                output = grown
                capacity = larger
            }
            var out = ZSTD_outBuffer(dst: output! + count, size: capacity - count, pos: 0)
            let left = ZSTD_compressStream2(compressor.context, &out, &input, mode)
            if ZSTD_isError(left) != 0 {
                failure = String(cString: ZSTD_getErrorName(left))
                return
            }
            count += out.pos
            if mode == ZSTD_e_end ? left == 0 : input.pos == input.size { return }
        }
    }
}

/// zstd decompression with a reusable context; one instance per worker.
public final class ZstdDecompressor {
    private let context: OpaquePointer

    public init() {
        self.context = ZSTD_createDCtx()
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses a frame whose decompressed size is known to be `size` bytes.
    ///
    /// zstd writes into uninitialised memory that the returned `Data` then owns: zero-filling
    /// it first (`Data(count:)`) was a second pass over every restored byte.
    public func decompress(_ input: Data, size: Int) throws -> Data {
        guard let out = malloc(max(size, 1)) else {
            throw BunkerError(.corruptObject, "A blob claims to decompress to \(size) bytes, more than can be held in memory.")
        }
        let written = input.withUnsafeBytes { inp in
            ZSTD_decompressDCtx(context, out, size, inp.baseAddress, inp.count)
        }
        if ZSTD_isError(written) != 0 {
            free(out)
            let reason = String(cString: ZSTD_getErrorName(written))
            throw BunkerError(.corruptObject, "zstd could not decompress a blob: \(reason).")
        }
        guard written == size else {
            free(out)
            throw BunkerError(.corruptObject, "A blob decompressed to \(written) bytes, expected \(size).")
        }
        return Data(bytesNoCopy: out, count: size, deallocator: .free)
    }
}
