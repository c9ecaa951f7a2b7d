import CSHA256
import Crypto
import Foundation

/// SHA-256 over a message handed over piece by piece, on the processor's SHA extensions, so that
/// two messages can be hashed in lockstep (``update(_:_:with:)``): about 1.7 times the speed of
/// hashing them one after the other on this project's machines (`Sources/CSHA256/sha256.c` says
/// why). Only where ``isAvailable``; elsewhere callers hash with swift-crypto.
///
/// A backup hashes every byte it reads twice, once for the file's SHA-256 and once for the keyed
/// id of its chunk (``KeyedSHA256``); this is what lets it do both in one pass.
struct SHA256Stream {
    /// Whether this processor has the SHA extensions the streams need.
    static let isAvailable = bunker_sha256_hw_available() != 0

    /// H0 to H7.
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
    /// The start of a block not yet complete, `length % 64` bytes of it.
    private var pending: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// Bytes hashed so far.
    private var length: UInt64 = 0

    /// A new message. Check ``isAvailable`` first.
    init() {
        state = (0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19)
    }

    /// Adds `bytes` to the message.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var rest = fillPending(from: bytes)
        let blocks = rest.count / 64
        if blocks > 0 {
            withUnsafeMutableBytes(of: &state) { state in
                bunker_sha256_blocks(state.baseAddress!.assumingMemoryBound(to: UInt32.self), rest.baseAddress!.assumingMemoryBound(to: UInt8.self), blocks)
            }
            length += UInt64(blocks * 64)
            rest = UnsafeRawBufferPointer(rebasing: rest[(blocks * 64)...])
        }
        keepPending(rest)
    }

    /// Adds the same `bytes` to two messages, in lockstep where both have whole blocks to hash.
    static func update(_ a: inout SHA256Stream, _ b: inout SHA256Stream, with bytes: UnsafeRawBufferPointer) {
        update(&a, with: bytes, &b, with: bytes)
    }

    /// Adds `bytesA` to `a` and `bytesB` to `b`, in lockstep for as many whole blocks as both
    /// have; the rest of the longer one is hashed alone.
    static func update(_ a: inout SHA256Stream, with bytesA: UnsafeRawBufferPointer, _ b: inout SHA256Stream, with bytesB: UnsafeRawBufferPointer) {
        var restA = a.fillPending(from: bytesA)
        var restB = b.fillPending(from: bytesB)
        let both = min(restA.count, restB.count) / 64
        if both > 0 {
            withUnsafeMutableBytes(of: &a.state) { stateA in
                withUnsafeMutableBytes(of: &b.state) { stateB in
                    bunker_sha256_blocks_x2(stateA.baseAddress!.assumingMemoryBound(to: UInt32.self), restA.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                            stateB.baseAddress!.assumingMemoryBound(to: UInt32.self), restB.baseAddress!.assumingMemoryBound(to: UInt8.self), both)
                }
            }
            a.length += UInt64(both * 64)
            b.length += UInt64(both * 64)
            restA = UnsafeRawBufferPointer(rebasing: restA[(both * 64)...])
            restB = UnsafeRawBufferPointer(rebasing: restB[(both * 64)...])
        }
        a.update(restA)
        b.update(restB)
    }

    /// The digest of everything added.
    consuming func finalize() -> ID {
        // FIPS 180-4 5.1.1: 0x80, zeros up to 56 bytes mod 64, the length in bits (big-endian);
        // one block, or two when fewer than 9 bytes of the last one are free.
        let held = Int(length % 64)
        let blocks = held < 56 ? 1 : 2
        var tail: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                   UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &tail) { tail in
            withUnsafeBytes(of: pending) { tail.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<held])) }
            tail[held] = 0x80
            tail.storeBytes(of: (length &* 8).bigEndian, toByteOffset: blocks * 64 - 8, as: UInt64.self)
            withUnsafeMutableBytes(of: &state) { state in
                bunker_sha256_blocks(state.baseAddress!.assumingMemoryBound(to: UInt32.self), tail.baseAddress!.assumingMemoryBound(to: UInt8.self), blocks)
            }
        }
        // The digest is H0 to H7, each big-endian.
        var digest = (state.0.bigEndian, state.1.bigEndian, state.2.bigEndian, state.3.bigEndian,
                      state.4.bigEndian, state.5.bigEndian, state.6.bigEndian, state.7.bigEndian)
        return withUnsafeBytes(of: &digest) { ID(bytes: $0) }
    }

    /// Completes the pending block from the front of `bytes` and hashes it when it is whole;
    /// returns what is left of `bytes`.
    private mutating func fillPending(from bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let held = Int(length % 64)
        guard !bytes.isEmpty, held > 0 || bytes.count < 64 else { return bytes }
        let taken = min(64 - held, bytes.count)
        withUnsafeMutableBytes(of: &pending) { block in
            block.baseAddress!.advanced(by: held).copyMemory(from: bytes.baseAddress!, byteCount: taken)
        }
        length += UInt64(taken)
        if held + taken == 64 {
            withUnsafeMutableBytes(of: &state) { state in
                withUnsafeBytes(of: pending) { block in
                    bunker_sha256_blocks(state.baseAddress!.assumingMemoryBound(to: UInt32.self), block.baseAddress!.assumingMemoryBound(to: UInt8.self), 1)
                }
            }
        }
        return UnsafeRawBufferPointer(rebasing: bytes[taken...])
    }

    /// Keeps the start of a block (fewer than 64 bytes) after the whole blocks were hashed.
    private mutating func keepPending(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        precondition(bytes.count < 64 && length % 64 == 0)
        withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        length += UInt64(bytes.count)
    }
}

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

extension SHA256Stream: Sendable {}
