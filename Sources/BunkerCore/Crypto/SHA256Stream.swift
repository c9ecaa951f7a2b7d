import CSHA256
import Crypto
import Foundation

/// SHA-256 over a message handed over piece by piece, on the processor's SHA extensions, so that
/// two messages can be hashed in lockstep (``update(_:_:with:)``): about 1.7 times the speed of
/// hashing them one after the other on this project's machines (`Sources/CSHA256/sha256.c` says
/// why). ``update(_:)`` and ``finalize()`` may be called only where ``isAvailable``; elsewhere
/// callers hash with swift-crypto.
///
/// A backup hashes every byte it reads twice, once for the file's SHA-256 and once for the keyed
/// id of its chunk (``KeyedSHA256``); this is what lets it do both in one pass. A verify hashes
/// each pack and every blob in it (``PackHashing``).
struct SHA256Stream: Sendable {
    /// Whether this processor has the SHA extensions the streams need, unless a test turned them
    /// off (``disabledForTesting``).
    static var isAvailable: Bool { hardware && !disabledForTesting }

    private static let hardware = bunker_sha256_hw_available() != 0

    /// Set by tests, so that the swift-crypto paths beside every use of the streams (see
    /// ``MasterKey/pairedIDs``) are tested on machines that have the extensions too.
    @TaskLocal static var disabledForTesting = false

    /// H0 to H7.
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
    /// The start of a block not yet complete, `length % 64` bytes of it.
    private var pending: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// Bytes hashed so far.
    private var length: UInt64 = 0

    /// A new message.
    init() {
        state = (0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19)
    }

    /// Adds `bytes` to the message.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var rest = fillPending(from: bytes)
        let blocks = rest.count / 64
        if blocks > 0 {
            compress(rest.baseAddress!, blocks: blocks)
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
                    bunker_sha256_blocks_x2(stateA.baseAddress!.assumingMemoryBound(to: UInt32.self), restA.baseAddress!,
                                            stateB.baseAddress!.assumingMemoryBound(to: UInt32.self), restB.baseAddress!, both)
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
            compress(UnsafeRawPointer(tail.baseAddress!), blocks: blocks)
        }
        // The digest is H0 to H7, each big-endian.
        var digest = (state.0.bigEndian, state.1.bigEndian, state.2.bigEndian, state.3.bigEndian,
                      state.4.bigEndian, state.5.bigEndian, state.6.bigEndian, state.7.bigEndian)
        return withUnsafeBytes(of: &digest) { ID(bytes: $0) }
    }

    /// Runs the compression function over `blocks` whole blocks at `data`.
    private mutating func compress(_ data: UnsafeRawPointer, blocks: Int) {
        withUnsafeMutableBytes(of: &state) { state in
            bunker_sha256_blocks(state.baseAddress!.assumingMemoryBound(to: UInt32.self), data, blocks)
        }
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
            let block = pending
            withUnsafeBytes(of: block) { compress($0.baseAddress!, blocks: 1) }
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
