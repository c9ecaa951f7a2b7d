import Crypto
@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct KeyTests {
    @Test func wrongPasswordIsAClearError() async throws {
        try await withTemporaryDirectory { dir in
            _ = try await TestRepository.create(at: dir + "/repo")
            await #expect {
                _ = try await Repository.open(storage: StorageLocation.storage(for: dir + "/repo"), password: "wrong")
            } throws: { error in
                (error as? BunkerError)?.code == .wrongPassword
            }
        }
    }

    @Test func missingRepositoryIsAClearError() async throws {
        try await withTemporaryDirectory { dir in
            await #expect {
                _ = try await Repository.open(storage: LocalStorage(path: dir), password: "x")
            } throws: { error in
                (error as? BunkerError)?.code == .repositoryNotFound
            }
        }
    }

    @Test func anotherKeyOpensTheSameRepository() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let added = try await repo.addKey(password: "second password", kdf: .testing)
            let second = try await Repository.open(storage: StorageLocation.storage(for: dir + "/repo"), password: "second password")
            #expect(second.keyName == added)
            #expect(second.config.id == repo.config.id)
            #expect(try await second.listKeys().count == 2)
            // The first key can be removed through the second, never the one in use.
            await #expect(throws: BunkerError.self) { _ = try await second.removeKey(added) }
            _ = try await second.removeKey(repo.keyName)
            await #expect {
                _ = try await TestRepository.open(at: dir + "/repo")
            } throws: { ($0 as? BunkerError)?.code == .wrongPassword }
            // The last key is never removed.
            await #expect(throws: BunkerError.self) { _ = try await second.removeKey(added) }
        }
    }

    @Test func passwordChangeReplacesTheKey() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            _ = try await repo.changePassword(to: "new one", kdf: .testing)
            _ = try await Repository.open(storage: StorageLocation.storage(for: dir + "/repo"), password: "new one")
            await #expect(throws: BunkerError.self) { _ = try await TestRepository.open(at: dir + "/repo") }
        }
    }

    @Test func storedObjectsRevealNoPlaintext() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            let marker = "PATIENT-NAME-MARKER-" + String(repeating: "x", count: 50)
            try Data(marker.utf8).write(to: URL(fileURLWithPath: dir + "/src/record-of-marker.txt"))
            let repo = try await TestRepository.create(at: dir + "/repo")
            try await TestRepository.backup(repo, [dir + "/src"])
            for case let path as String in FileManager.default.enumerator(atPath: dir + "/repo")! {
                guard let data = FileManager.default.contents(atPath: dir + "/repo/" + path) else { continue }
                #expect(data.range(of: Data("MARKER".utf8)) == nil, "\(path) leaks content")
                #expect(data.range(of: Data("record-of".utf8)) == nil, "\(path) leaks a file name")
            }
        }
    }
}

@Suite struct KeyFormatTests {
    @Test func unknownKeyFormatSaysUpgradeNotWrongPassword() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let path = dir + "/repo/keys/" + repo.keyName
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "\"kdf\":\"scrypt\"", with: "\"kdf\":\"argon2id\"")
            #expect(text.contains("argon2id"))
            chmod(path, 0o600)
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            await #expect {
                _ = try await TestRepository.open(at: dir + "/repo")
            } throws: { error in
                guard let error = error as? BunkerError else { return false }
                return error.code == .unsupportedFormat && error.message.contains("upgrade Bunker")
            }
        }
    }

    /// Blob ids come from a copy of HMAC's keyed state: they must be HMAC-SHA-256 under the mac
    /// key for any length, whole or in pieces, and one blob's id must not leak into the next.
    @Test func blobIDsAreTheHMACOfThePlaintextWhicheverWayComputed() {
        let key = MasterKey.generate()
        var rng = SystemRandomNumberGenerator()
        for size in [0, 1, 55, 56, 63, 64, 65, 4096, 100_003] {
            let data = Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let expected = ID(digest: HMAC<SHA256>.authenticationCode(for: data, using: key.mac))
            #expect(key.blobID(of: data) == expected, "\(size) bytes")
            var hasher = key.blobIDHasher()
            var rest = data[...]
            while !rest.isEmpty {
                hasher.update(data: rest.prefix(1000))
                rest = rest.dropFirst(1000)
            }
            #expect(ID(digest: hasher.finalize()) == expected, "\(size) bytes in pieces")
        }
        let first = key.blobID(of: Data("a".utf8))
        _ = key.blobID(of: Data("b".utf8))
        #expect(key.blobID(of: Data("a".utf8)) == first)
        #expect(first != MasterKey.generate().blobID(of: Data("a".utf8)))
    }
}
