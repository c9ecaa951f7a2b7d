import CZstd
import Foundation

/// zstd compression with a reusable context; one instance per worker, not shared between tasks.
public final class ZstdCompressor {
    private let context: OpaquePointer
    /// The zstd level (1–19; 3 is zstd's own default).
    public let level: Int32
    private var buffer: [UInt8] = []

    public init(level: Int) {
        self.context = ZSTD_createCCtx()
        self.level = Int32(level)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `input`, or returns nil when the result would not be smaller.
    public func compress(_ input: UnsafeRawBufferPointer) -> Data? {
        let bound = ZSTD_compressBound(input.count)
        if buffer.count < bound { buffer = [UInt8](repeating: 0, count: bound) }
        let size = buffer.withUnsafeMutableBytes { out in
            ZSTD_compressCCtx(context, out.baseAddress, out.count, input.baseAddress, input.count, level)
        }
        guard ZSTD_isError(size) == 0, size < input.count else { return nil }
        return buffer.withUnsafeBytes { Data($0.prefix(size)) }
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
    public func decompress(_ input: Data, size: Int) throws -> Data {
        var output = Data(count: size)
        let written = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { inp in
                ZSTD_decompressDCtx(context, out.baseAddress, size, inp.baseAddress, inp.count)
            }
        }
        if ZSTD_isError(written) != 0 {
            let reason = String(cString: ZSTD_getErrorName(written))
            throw BunkerError(.corruptObject, "zstd could not decompress a blob: \(reason).")
        }
        guard written == size else {
            throw BunkerError(.corruptObject, "A blob decompressed to \(written) bytes, expected \(size).")
        }
        return output
    }
}
