import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct LocalStorageTests {
    @Test(arguments: StorageConformance.checks.map(\.0))
    func conformsToStorageGuarantees(check name: String) async throws {
        let check = StorageConformance.checks.first { $0.0 == name }!.1
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            try await check(storage)
        }
    }

    @Test func createsPrivateDirectoriesAndFiles() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            let data = Data("secret".utf8)
            let handle = ObjectHandle(.pack, ID.sha256(of: data))
            try await storage.save(handle, data: data)
            var st = stat()
            lstat(dir + "/repo", &st)
            #expect(st.st_mode & 0o777 == 0o700)
            lstat(dir + "/repo/data", &st)
            #expect(st.st_mode & 0o777 == 0o700)
            lstat(dir + "/repo/data/\(handle.name.prefix(2))/\(handle.name)", &st)
            #expect(st.st_mode & 0o777 == 0o600)
        }
    }

    @Test func leavesNoTemporaryFilesBehind() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            for i in 0..<5 {
                let data = Data("object \(i)".utf8)
                try await storage.save(ObjectHandle(.index, ID.sha256(of: data)), data: data)
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/index")
            #expect(names.count == 5)
            #expect(names.allSatisfy { !$0.hasPrefix(".") })
        }
    }

    @Test func refusesNamesThatEscapeTheRepository() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            for name in ["../escape", ".hidden", "a/b", ""] {
                await #expect(throws: BunkerError.self) {
                    try await storage.save(ObjectHandle(.snapshot, name), data: Data("x".utf8))
                }
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/repo/escape"))
        }
    }
}
