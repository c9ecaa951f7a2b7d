import CScrypt
import Crypto
import Foundation

/// scrypt (RFC 7914) for key files: PBKDF2-HMAC-SHA-256 here, the memory-hard ROMix in C
/// (`Sources/CScrypt/scrypt.c` says why it is not BoringSSL's).
enum Scrypt {
    /// The most one key file may ask for: 1 GiB of working memory (128 × r × N per lane, and
    /// 128 × r × p for the lanes), and as much work as that many bytes (128 × r × N × p), 32
    /// times the standard cost. A key file asking for more is refused rather than tried: anyone
    /// who can write to the repository's storage could otherwise add one that takes hours.
    static let memoryLimit = 1 << 30

    /// scrypt(password, salt, N, r, p) of `length` bytes.
    static func derive(password: [UInt8], salt: [UInt8], n: Int, r: Int, p: Int, length: Int) throws -> [UInt8] {
        guard n > 1, n & (n - 1) == 0, n <= 1 << 32, r >= 1, p >= 1, length >= 1,
              r <= memoryLimit / 128, n <= memoryLimit / (128 * r), p <= memoryLimit / (128 * r * n) else {
            throw BunkerError(.unsupportedFormat, "scrypt parameters N=\(n) r=\(r) p=\(p) are out of range: N must be a power of two from 2 to 2^32, r and p at least 1, and 128 × r × N × p at most \(memoryLimit >> 20) MiB.")
        }
        let laneBytes = 128 * r
        var lanes = pbkdf2(password: password, salt: salt, length: p * laneBytes)
        defer { wipe(&lanes) }
        for lane in 0..<p {
            let status = lanes.withUnsafeMutableBufferPointer { buffer in
                bunker_scrypt_romix(buffer.baseAddress! + lane * laneBytes, r, UInt64(n))
            }
            guard status == 0 else {
                throw BunkerError(.outOfMemory, "Deriving the key needs \((n * laneBytes / Int(BUNKER_SCRYPT_TABLE_STRIDE)) >> 20) MiB of memory (scrypt N=\(n) r=\(r)), which this system did not give: free some memory or raise the process's limit (ulimit -v).")
            }
        }
        return pbkdf2(password: password, salt: lanes, length: length)
    }

    /// PBKDF2-HMAC-SHA-256 with one iteration, all that scrypt uses: block i is
    /// HMAC(password, salt ‖ i as a big-endian UInt32), from i = 1.
    static func pbkdf2(password: [UInt8], salt: [UInt8], length: Int) -> [UInt8] {
        let key = HMAC<SHA256>(key: SymmetricKey(data: password))
        var output: [UInt8] = []
        output.reserveCapacity(length + SHA256.byteCount)
        var index: UInt32 = 1
        while output.count < length {
            var mac = key
            mac.update(data: salt)
            mac.update(data: withUnsafeBytes(of: index.bigEndian) { Array($0) })
            output.append(contentsOf: mac.finalize())
            index += 1
        }
        output.removeLast(output.count - length)
        return output
    }

    /// Zeroes the lanes, which hold what the key is derived from, before they are let go of.
    private static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            explicit_bzero(base, raw.count)
        }
    }
}
