import Crypto
@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// ``SHA256Stream`` and ``KeyedSHA256`` must give swift-crypto's digests, bit for bit, however a
/// message is cut into pieces and whichever stream is ahead when two are hashed in lockstep.
@Suite(.enabled(if: SHA256Stream.isAvailable, "the processor has no SHA extensions"))
struct SHA256StreamTests {
    /// Deterministic bytes, so that a failure can be replayed.
    private static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    private static func sha256(_ bytes: [UInt8]) -> ID {
        ID(digest: SHA256.hash(data: bytes))
    }

    @Test func knownDigests() {
        // FIPS 180-2's examples, and the empty message.
        let cases: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ]
        for (message, digest) in cases {
            var stream = SHA256Stream()
            Array(message.utf8).withUnsafeBytes { stream.update($0) }
            #expect(stream.finalize().hex == digest, "\(message.debugDescription)")
        }
    }

    /// Every length up to three blocks: every place the padding can start, one block or two.
    @Test func everyLengthUpToThreeBlocksAndLonger() {
        for length in Array(0...192) + [1000, 8192, 65_599] {
            let message = Self.bytes(length, seed: UInt64(length))
            var whole = SHA256Stream()
            message.withUnsafeBytes { whole.update($0) }
            #expect(whole.finalize() == Self.sha256(message), "\(length) bytes")
        }
    }

    @Test func aMessageInPiecesOfAnySizeHashesAsAWhole() {
        for round in 0..<40 {
            var generator = SeededGenerator(seed: UInt64(round))
            let message = Self.bytes(Int.random(in: 0...20_000, using: &generator), seed: UInt64(round))
            var stream = SHA256Stream()
            var at = 0
            while at < message.count {
                let piece = min(message.count - at, [1, 3, 63, 64, 65, 200, 4096].randomElement(using: &generator)!)
                message[at..<(at + piece)].withUnsafeBytes { stream.update($0) }
                at += piece
            }
            #expect(stream.finalize() == Self.sha256(message), "round \(round), \(message.count) bytes")
        }
    }

    /// What a backup does: one stream for the whole file, one for each chunk, each chunk's bytes
    /// added to both at once; the file's stream is at any offset within its block.
    @Test func twoStreamsInLockstepGiveEachItsOwnDigest() {
        for round in 0..<30 {
            var generator = SeededGenerator(seed: 100 + UInt64(round))
            let content = Self.bytes(Int.random(in: 0...60_000, using: &generator), seed: 1000 + UInt64(round))
            var file = SHA256Stream()
            var at = 0
            while at < content.count {
                let length = min(content.count - at, Int.random(in: 1...9000, using: &generator))
                let chunk = Array(content[at..<(at + length)])
                var stream = SHA256Stream()
                if round % 3 == 0 {
                    // The chunk's stream starts part-way through a block, too.
                    Array(content.prefix(at % 64)).withUnsafeBytes { stream.update($0) }
                }
                chunk.withUnsafeBytes { SHA256Stream.update(&file, &stream, with: $0) }
                let expected = round % 3 == 0 ? Array(content.prefix(at % 64)) + chunk : chunk
                #expect(stream.finalize() == Self.sha256(expected), "round \(round), chunk at \(at)")
                at += length
            }
            #expect(file.finalize() == Self.sha256(content), "round \(round), \(content.count) bytes")
        }
    }

    /// What a verify does: a pack's sealed bytes and its blobs' plaintexts, of other lengths.
    @Test func twoStreamsOfDifferentMessagesInLockstep() {
        for round in 0..<30 {
            var generator = SeededGenerator(seed: 200 + UInt64(round))
            let first = Self.bytes(Int.random(in: 0...30_000, using: &generator), seed: 2000 + UInt64(round))
            let second = Self.bytes(Int.random(in: 0...30_000, using: &generator), seed: 3000 + UInt64(round))
            var a = SHA256Stream()
            var b = SHA256Stream()
            var (at, bt) = (0, 0)
            while at < first.count || bt < second.count {
                let pieceA = min(first.count - at, Int.random(in: 0...5000, using: &generator))
                let pieceB = min(second.count - bt, Int.random(in: 0...5000, using: &generator))
                first[at..<(at + pieceA)].withUnsafeBytes { bytesA in
                    second[bt..<(bt + pieceB)].withUnsafeBytes { bytesB in SHA256Stream.update(&a, with: bytesA, &b, with: bytesB) }
                }
                (at, bt) = (at + pieceA, bt + pieceB)
            }
            #expect(a.finalize() == Self.sha256(first), "round \(round)")
            #expect(b.finalize() == Self.sha256(second), "round \(round)")
        }
    }

    @Test func keyedIDsAreSwiftCryptosHMAC() {
        for (keyLength, seed) in [(32, 1), (16, 2), (64, 3), (100, 4)] {
            let key = SymmetricKey(data: Self.bytes(keyLength, seed: UInt64(seed)))
            let keyed = KeyedSHA256(key: key)
            for length in [0, 1, 64, 4096, 8192, 12_345] {
                let message = Self.bytes(length, seed: UInt64(length + seed))
                var stream = keyed.start()
                message.withUnsafeBytes { stream.update($0) }
                let expected = ID(digest: HMAC<SHA256>.authenticationCode(for: message, using: key))
                #expect(keyed.finalize(stream) == expected, "key of \(keyLength) bytes, message of \(length)")
            }
        }
    }

    @Test func aMasterKeysPairedIDsAreItsBlobIDs() {
        let key = MasterKey.generate()
        let message = Self.bytes(10_000, seed: 7)
        var stream = key.pairedIDs!.start()
        message.withUnsafeBytes { stream.update($0) }
        #expect(key.pairedIDs!.finalize(stream) == key.blobID(of: message))
    }

    /// A backup names every chunk, and every file's content, alike with the extensions and
    /// without them (swift-crypto): the same tree backed up again the other way, every file
    /// read, adds nothing and gives the same root listing (which holds each file's SHA-256), and
    /// each way verifies what the other wrote.
    @Test func aBackupNamesEveryChunkAlikeWithAndWithoutTheExtensions() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", seed: 8)
            let repo = try await TestRepository.create(at: dir + "/repo")
            #expect(repo.key.pairedIDs != nil)
            let first = try await TestRepository.backup(repo, [dir + "/src"])
            let second = try await SHA256Stream.$disabledForTesting.withValue(true) {
                let plain = try await TestRepository.open(at: dir + "/repo")
                #expect(plain.key.pairedIDs == nil)
                var request = BackupRequest(paths: [dir + "/src"])
                request.parent = .none
                let second = try await Archiver(repository: plain, request: request).run()
                let report = try await Checker(repository: plain).check(readData: true)
                #expect(report.errors.isEmpty, "\(report.errors.map(\.message))")
                return second
            }
            #expect((first.snapshot.summary?.dataAdded ?? 0) > 1 << 20, "the first backup stored the tree")
            #expect(second.snapshot.summary?.filesNew ?? 0 > 0, "the second backup read every file")
            #expect(second.snapshot.summary?.blobsAdded == 0, "the same content backed up without the extensions added nothing")
            #expect(second.snapshot.tree == first.snapshot.tree)
            let report = try await Checker(repository: repo).check(readData: true)
            #expect(report.errors.isEmpty, "\(report.errors.map(\.message))")
        }
    }
}
