import CZstd
import Foundation

/// zstd compression with a reusable context; one instance per worker, not shared between tasks.
public final class ZstdCompressor {
    private let context: OpaquePointer
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
