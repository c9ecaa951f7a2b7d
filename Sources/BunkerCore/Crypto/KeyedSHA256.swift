import Crypto
import Foundation

/// HMAC-SHA-256 (RFC 2104) under one key with ``SHA256Stream``s: the states after the padded key
/// are computed once, and each message starts from a copy.
struct KeyedSHA256: Sendable {
    private let inner: SHA256Stream
    private let outer: SHA256Stream

    /// Check ``SHA256Stream/isAvailable`` first.
    init(key: SymmetricKey) {
        var block = [UInt8](repeating: 0, count: 64)
        key.withUnsafeBytes { key in
            if key.count > 64 {
                block.replaceSubrange(0..<32, with: Array(SHA256.hash(data: key)))
            } else {
                block.replaceSubrange(0..<key.count, with: key)
            }
        }
        var inner = SHA256Stream()
        var outer = SHA256Stream()
        block.map { $0 ^ 0x36 }.withUnsafeBytes { inner.update($0) }
        block.map { $0 ^ 0x5c }.withUnsafeBytes { outer.update($0) }
        self.inner = inner
        self.outer = outer
    }

    /// A stream for one message: add the message to it, then ``finalize(_:)``.
    func start() -> SHA256Stream {
        inner
    }

    /// The HMAC of the message added to `stream`.
    func finalize(_ stream: consuming SHA256Stream) -> ID {
        var outer = outer
        // An ID's words hold the digest's 32 bytes in order.
        withUnsafeBytes(of: stream.finalize()) { outer.update($0) }
        return outer.finalize()
    }
}
