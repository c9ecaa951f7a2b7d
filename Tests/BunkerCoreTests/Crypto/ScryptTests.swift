import Crypto
import CryptoExtras
import Foundation
import Testing

@testable import BunkerCore

/// Key files derive their wrapping key with Bunker's own scrypt: it must give exactly what
/// RFC 7914 and BoringSSL (which made the key files of earlier releases) give.
@Suite struct ScryptTests {
    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test func matchesTheVectorsOfRFC7914() throws {
        #expect(hex(Scrypt.pbkdf2(password: Array("passwd".utf8), salt: Array("salt".utf8), length: 64))
            == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
        #expect(hex(try Scrypt.derive(password: [], salt: [], n: 16, r: 1, p: 1, length: 64))
            == "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906")
        #expect(hex(try Scrypt.derive(password: Array("password".utf8), salt: Array("NaCl".utf8), n: 1024, r: 8, p: 16, length: 64))
            == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")
        #expect(hex(try Scrypt.derive(password: Array("pleaseletmein".utf8), salt: Array("SodiumChloride".utf8), n: 16384, r: 8, p: 1, length: 64))
            == "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887")
    }

    @Test func agreesWithBoringSSLForOtherCostsAndLengths() throws {
        var rng = SystemRandomNumberGenerator()
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        // Passwords longer than a SHA-256 block are hashed first by HMAC; odd r and p, and an
        // output that is not a whole number of PBKDF2 blocks, exercise the other edges.
        for (n, r, p, passwordLength, length) in [(2, 1, 1, 0, 32), (4, 3, 2, 100, 33), (256, 2, 3, 64, 70), (1024, 8, 1, 11, 32), (8192, 1, 1, 1, 16)] {
            let password = bytes(passwordLength), salt = bytes(32)
            let expected = try KDF.Scrypt.deriveKey(
                from: Data(password), salt: Data(salt), outputByteCount: length, rounds: n, blockSize: r, parallelism: p)
            let mine = try Scrypt.derive(password: password, salt: salt, n: n, r: r, p: p, length: length)
            #expect(mine == expected.withUnsafeBytes { Array($0) }, "N=\(n) r=\(r) p=\(p)")
        }
    }

    @Test func aKeyFileMadeWithBoringSSLScryptStillOpens() throws {
        let master = MasterKey.generate()
        let made = try KeyFile.make(master: master, password: "secret", parameters: .testing)
        let salt = made.salt
        let wrapping = try KDF.Scrypt.deriveKey(
            from: Data("secret".utf8), salt: salt, outputByteCount: 32,
            rounds: KDFParameters.testing.n, blockSize: KDFParameters.testing.r, parallelism: KDFParameters.testing.p)
        var old = made
        old.data = try AES.GCM.seal(JSONEncoder().encode(master.encoded), using: wrapping).combined!
        #expect(try old.unlock(password: "secret").sharesIdentity(with: master))
        #expect(throws: BunkerError.self) { try old.unlock(password: "Secret") }
    }

    /// Out of range: N not a power of two, r or p zero, more than 1 GiB of table or lanes, or
    /// more work than 1 GiB's worth (the last: 128 MiB of table, 1,024 lanes).
    @Test func refusesCostsOutOfRangeBeforeAskingForMemory() {
        for (n, r, p) in [(0, 8, 1), (1, 8, 1), (3, 8, 1), (1 << 15, 0, 1), (1 << 15, 8, 0), (1 << 30, 8, 1), (2, 1 << 24, 1), (2, 8, 1 << 21), (1 << 20, 1, 1 << 10)] {
            // The C side would refuse most of these too, but only after trying: the Swift side
            // says which costs are allowed.
            let error = #expect(throws: BunkerError.self, "N=\(n) r=\(r) p=\(p)") {
                try Scrypt.derive(password: [1], salt: [2], n: n, r: r, p: p, length: 32)
            }
            #expect(error?.code == .unsupportedFormat && error?.message.contains("out of range") == true, "N=\(n) r=\(r) p=\(p)")
        }
    }
}
