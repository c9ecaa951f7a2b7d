import BunkerCore
import Foundation

/// The guarantees of ``Storage``, checked against any backend.
///
/// A backend's test calls ``run(_:)`` with a factory that returns an empty store; each check gets
/// a fresh one. A failed guarantee throws ``ConformanceFailure`` naming it.
public enum StorageConformance {
    public struct ConformanceFailure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Every check, by name, so that a test table can run them one by one.
    public static let checks: [(String, @Sendable (any Storage) async throws -> Void)] = [
        ("saveThenLoadReturnsTheSameBytes", saveThenLoad),
        ("loadReadsExactRanges", ranges),
        ("saveNeverOverwrites", neverOverwrites),
        ("missingObjectsSayNotFound", missing),
        ("listSeesEveryKindSeparately", listing),
        ("listWithPrefixSeesOnlyMatchingNames", prefixListing),
        ("removeMakesObjectsDisappear", removal),
        ("emptyAndLargeObjects", sizes),
        ("concurrentSavesAllLand", concurrent),
    ]

    /// Runs every check, each on a fresh store.
    public static func run(_ makeStorage: () async throws -> any Storage) async throws {
        for (_, check) in checks { try await check(makeStorage()) }
    }

    static func expect(_ condition: Bool, _ message: String) throws {
        if !condition { throw ConformanceFailure(description: message) }
    }

    static func expectCode(_ code: BunkerError.Code, _ message: String, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as BunkerError where error.code == code {
            return
        } catch {
            throw ConformanceFailure(description: "\(message): threw \(error) instead of \(code)")
        }
        throw ConformanceFailure(description: "\(message): did not throw \(code)")
    }

    static func sample(_ size: Int, seed: UInt64) -> Data {
        var rng = SeededGenerator(seed: seed)
        return rng.bytes(size)
    }

    static func saveThenLoad(_ storage: any Storage) async throws {
        let data = sample(1000, seed: 1)
        let handle = ObjectHandle(.pack, ID.sha256(of: data))
        try await storage.save(handle, data: data)
        try expect(try await storage.load(handle) == data, "load returns what save stored")
        try expect(try await storage.stat(handle).size == 1000, "stat reports the size")
        let config = ObjectHandle.config
        try await storage.save(config, data: Data("cfg".utf8))
        try expect(try await storage.load(config) == Data("cfg".utf8), "the config object round-trips")
    }

    static func ranges(_ storage: any Storage) async throws {
        let data = sample(4096, seed: 2)
        let handle = ObjectHandle(.index, ID.sha256(of: data))
        try await storage.save(handle, data: data)
        for range in [0..<1, 100..<200, 4000..<4096, 0..<4096] {
            try expect(try await storage.load(handle, range: range) == data[range], "range \(range) is exact")
        }
        try await expectCode(.corruptObject, "a range past the end fails") {
            _ = try await storage.load(handle, range: 4000..<5000)
        }
    }

    static func neverOverwrites(_ storage: any Storage) async throws {
        let handle = ObjectHandle(.snapshot, ID.sha256(of: Data("x".utf8)))
        try await storage.save(handle, data: Data("first".utf8))
        try await expectCode(.objectExists, "a second save of the same name fails") {
            try await storage.save(handle, data: Data("second".utf8))
        }
        try expect(try await storage.load(handle) == Data("first".utf8), "the first content stays")
    }

    static func missing(_ storage: any Storage) async throws {
        let handle = ObjectHandle(.pack, ID.sha256(of: Data("absent".utf8)))
        try await expectCode(.objectNotFound, "load of a missing object") { _ = try await storage.load(handle) }
        try await expectCode(.objectNotFound, "stat of a missing object") { _ = try await storage.stat(handle) }
        try await expectCode(.objectNotFound, "remove of a missing object") { try await storage.remove(handle) }
        try expect(try await storage.exists(handle) == false, "exists is false")
    }

    static func listing(_ storage: any Storage) async throws {
        var expected: [ObjectKind: Set<String>] = [:]
        for (i, kind) in [ObjectKind.pack, .index, .snapshot, .key, .lock].enumerated() {
            for j in 0..<3 {
                let data = sample(10 + j, seed: UInt64(i * 10 + j + 100))
                let handle = ObjectHandle(kind, ID.sha256(of: data))
                try await storage.save(handle, data: data)
                expected[kind, default: []].insert(handle.name)
            }
        }
        for (kind, names) in expected {
            let listed = try await storage.list(kind)
            try expect(Set(listed.map(\.handle.name)) == names, "list(\(kind)) returns exactly its objects")
            try expect(listed.allSatisfy { $0.handle.kind == kind }, "listed handles carry their kind")
        }
    }

    static func prefixListing(_ storage: any Storage) async throws {
        try expect(try await storage.list(.wal, prefix: "clinic-").isEmpty, "a kind without objects lists none by prefix")
        let names = ["clinic-000000010000000000000001-a", "clinic-000000010000000000000001-b", "clinic-000000010000000000000002-a",
                     "clinic-db-000000010000000000000001-a", "other-000000010000000000000001-a"]
        for (i, name) in names.enumerated() {
            try await storage.save(ObjectHandle(.wal, name), data: sample(20, seed: UInt64(200 + i)))
        }
        try await storage.save(ObjectHandle(.snapshot, "clinic-000000010000000000000001-c"), data: sample(20, seed: 300))
        let listed = try await storage.list(.wal, prefix: "clinic-000000010000000000000001-")
        try expect(Set(listed.map(\.handle.name)) == Set(names.prefix(2)), "list(wal, prefix:) returns exactly the objects of that kind whose names start with it")
        try expect(listed.allSatisfy { $0.handle.kind == .wal && $0.size == 20 }, "prefix-listed handles carry their kind and size")
        try expect(Set(try await storage.list(.wal, prefix: "clinic-").map(\.handle.name)) == Set(names.prefix(4)), "a shorter prefix matches more")
        try expect(try await storage.list(.wal, prefix: "none-").isEmpty, "a prefix nothing starts with lists nothing")
        try expect(Set(try await storage.list(.wal, prefix: "").map(\.handle.name)) == Set(names), "an empty prefix lists the whole kind")
    }

    static func removal(_ storage: any Storage) async throws {
        let data = sample(50, seed: 7)
        let handle = ObjectHandle(.lock, ID.sha256(of: data))
        try await storage.save(handle, data: data)
        try await storage.remove(handle)
        try expect(try await storage.exists(handle) == false, "a removed object is gone")
        try expect(try await storage.list(.lock).isEmpty, "and not listed")
        try await storage.save(handle, data: data)
        try expect(try await storage.load(handle) == data, "a removed name can be saved again")
    }

    static func sizes(_ storage: any Storage) async throws {
        let empty = ObjectHandle(.key, "empty-object")
        try await storage.save(empty, data: Data())
        try expect(try await storage.load(empty).isEmpty, "an empty object loads empty")
        let big = sample(9 << 20, seed: 9)
        let handle = ObjectHandle(.pack, ID.sha256(of: big))
        try await storage.save(handle, data: big)
        try expect(try await storage.load(handle) == big, "a 9 MiB object round-trips")
    }

    static func concurrent(_ storage: any Storage) async throws {
        let blobs = (0..<32).map { sample(2000 + $0, seed: UInt64(1000 + $0)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for blob in blobs {
                group.addTask { try await storage.save(ObjectHandle(.pack, ID.sha256(of: blob)), data: blob) }
            }
            try await group.waitForAll()
        }
        try expect(try await storage.list(.pack).count == 32, "32 concurrent saves are all listed")
    }
}
