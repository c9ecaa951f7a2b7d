@testable import BunkerCore
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

    /// A directory opened to a group (PostgreSQL's, for `wal/`) keeps what is written into it
    /// readable by that group, whoever writes it.
    @Test func aFileInADirectoryItsGroupMayReadGoesToThatGroup() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            // A group other than the writer's own, when running as root (nobody's group).
            let group: gid_t = geteuid() == 0 ? 65534 : getegid()
            #expect(chown(dir + "/repo/wal", uid_t.max, group) == 0 && chmod(dir + "/repo/wal", 0o2770) == 0)
            try await storage.save(ObjectHandle(.wal, "clinic-000000010000000000000001-\(ID.sha256(of: Data("w".utf8)).hex)"), data: Data("w".utf8))
            let name = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/wal").first)
            var st = stat()
            lstat(dir + "/repo/wal/" + name, &st)
            #expect(st.st_mode & 0o777 == 0o640 && st.st_gid == group, "mode \(String(st.st_mode & 0o777, radix: 8)), group \(st.st_gid)")
            // Directories Bunker made itself stay private, and so do their files.
            let data = Data("secret".utf8)
            try await storage.save(ObjectHandle(.key, ID.sha256(of: data).hex), data: data)
            let key = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/repo/keys").first)
            lstat(dir + "/repo/keys/" + key, &st)
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

    /// Loads of 512 KiB and more map the file rather than read it: the bytes must be the same,
    /// from any offset (not only page-aligned ones), a caller's change to its copy must never
    /// reach the file, and a file shorter than the range asked must still be named truncated.
    @Test func largeLoadsReturnTheFileBytesFromAnyOffsetAndNeverWriteThrough() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            var generator = SystemRandomNumberGenerator()
            let data = Data((0..<(3 << 20) + 123).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let handle = ObjectHandle(.pack, ID.sha256(of: data))
            try await storage.save(handle, data: data)

            let loaded = try await storage.load(handle)
            #expect(loaded == data)
            // Mapped, not read: the object's file is among this process's mappings while the
            // loaded bytes are alive.
            let maps = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
            #expect(maps.contains(handle.name), "the 3 MiB load is a map of the pack")
            withExtendedLifetime(loaded) {}
            for range in [0..<(1 << 20), 4095..<(4095 + (600 << 10)), 5000..<data.count, (1 << 20) + 1..<(3 << 20)] {
                let loaded = try await storage.load(handle, range: range)
                #expect(loaded == data.subdata(in: range), "bytes \(range)")
            }

            var copy = try await storage.load(handle, range: 4097..<(4097 + (1 << 20)))
            copy[copy.startIndex] ^= 0xff
            copy[copy.endIndex - 1] ^= 0xff
            #expect(copy[copy.startIndex] != data[4097])
            #expect(try await storage.load(handle) == data)

            let file = dir + "/repo/data/\(handle.name.prefix(2))/\(handle.name)"
            #expect(truncate(file, off_t(2 << 20)) == 0)
            await #expect {
                _ = try await storage.load(handle, range: (1 << 20)..<(3 << 20))
            } throws: { error in
                (error as? BunkerError)?.code == .corruptObject && "\(error)".contains("truncated")
            }
        }
    }

    /// Pages of `file` in the page cache, and its pages in all.
    static func residentPages(_ file: String) throws -> (resident: Int, total: Int) {
        let fd = open(file, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var st = stat()
        try #require(fstat(fd, &st) == 0)
        let length = Int(st.st_size)
        let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0)
        try #require(map != MAP_FAILED)
        defer { munmap(map, length) }
        let pages = (length + 4095) / 4096
        var vector = [UInt8](repeating: 0, count: pages)
        try #require(mincore(map, length, &vector) == 0)
        return (vector.filter { $0 & 1 != 0 }.count, pages)
    }

    /// Whether the file system the tests' temporary directories are made on is a tmpfs
    /// (its longest mount point in /proc/mounts that holds it).
    static var temporaryDirectoryIsOnTmpfs: Bool {
        let temporary: String = (NSTemporaryDirectory() as NSString).resolvingSymlinksInPath
        let mounts: String = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        var best: (point: String, type: String) = ("", "")
        for line in mounts.split(separator: "\n") {
            let fields: [String] = line.split(separator: " ").map(String.init)
            guard fields.count > 2 else { continue }
            let point = fields[1]
            let holds = point == "/" || temporary == point || temporary.hasPrefix(point + "/")
            if holds && point.count >= best.point.count { best = (point, fields[2]) }
        }
        return best.type == "tmpfs"
    }

    /// Packs go around the page cache (``DirectFileWriter``): a backup does not read them back, and
    /// copying them into the cache cost a first backup a seventh of its CPU. Whatever the size
    /// (whole 4 KiB blocks or not, under the threshold or not), the bytes are the same.
    @Test(.enabled(if: !Self.temporaryDirectoryIsOnTmpfs, "tmpfs keeps every file in the page cache"))
    func largeObjectsAreWrittenAroundThePageCacheWithTheSameBytes() async throws {
        try await withTemporaryDirectory { dir in
            let storage = LocalStorage(path: dir + "/repo")
            try storage.create()
            for size in [(2 << 20) + 4095, 2 << 20, (1 << 20) - 1, 10_000] {
                // Every 4 KiB block differs from the others, and every object from the others.
                let data = Data((0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761 &+ size) >> 11) })
                let handle = ObjectHandle(.pack, ID.sha256(of: data))
                try await storage.save(handle, data: data)
                let file = dir + "/repo/data/\(handle.name.prefix(2))/\(handle.name)"
                let (resident, total) = try Self.residentPages(file)
                if size >= DirectFileWriter.threshold {
                    // At most the last, partial block went through the cache.
                    #expect(resident <= 1, "\(resident) of \(total) pages of a \(size)-byte pack in the page cache")
                } else {
                    #expect(resident == total, "a small object is written through the cache as before")
                }
                #expect(try await storage.load(handle) == data, "\(size) bytes")
                #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == data)
            }
        }
    }

    /// A page that cannot be read must fail the map, so that the load reads and reports the
    /// error, never hand out memory that kills the process with SIGBUS when touched. A disk's
    /// read error cannot be made here; a range past the end of the file fails the same way.
    @Test(.enabled(if: Self.kernelPopulatesMaps, "MADV_POPULATE_READ needs Linux 5.14; older kernels read every load"))
    func aMapWhosePagesCannotAllBeReadIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let file = dir + "/short"
            try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: file))
            let fd = open(file, O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            let whole = try #require(LocalStorage.map(fd, start: 4096 + 5, count: (1 << 20) - 4096 - 5))
            #expect(whole.allSatisfy { $0 == 7 })
            #expect(LocalStorage.map(fd, start: 0, count: 4 << 20) == nil, "pages past the end of the file")
        }
    }

    /// Whether this kernel takes MADV_POPULATE_READ (Linux 5.14 and later).
    static var kernelPopulatesMaps: Bool {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let base = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else { return false }
        defer { munmap(base, page) }
        return madvise(base, page, MADV_POPULATE_READ) == 0
    }
}
