import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// A restore in place of a file tree replaces only what the snapshot manages, and deletes nothing
/// that no snapshot holds.
@Suite(.serialized) struct FilesRestoreInPlaceTests {
    func service(_ dir: String, path: String? = nil, excludes: String = #"["*.tmp", "cache/"]"#) async throws -> BunkerService {
        try await makeService(in: dir, sources: """
            [[source]]
            name = "studies"
            kind = "files"
            path = "\(path ?? dir + "/studies")"
            exclude = \(excludes)
            """)
    }

    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    /// The issue's own reproduction: excluded paths survive a restore in place.
    @Test func excludedPathsStayWhereTheyAre() async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            try write("a", studies + "/a.txt")
            try write("cached", studies + "/cache/c.bin")
            try write("nested cache", studies + "/2025/cache/n.bin")
            let service = try await service(dir)
            let backup = try await service.backup(SourceBackupRequest(type: .files))
            try write("new", studies + "/work.tmp")
            try write("new deep", studies + "/2025/scan.tmp")
            try write("changed", studies + "/a.txt")
            try write("added later", studies + "/b.txt")

            let outcome = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
            #expect(read(studies + "/a.txt") == "a", "what the snapshot holds is restored")
            #expect(!FileManager.default.fileExists(atPath: studies + "/b.txt"), "a managed file the snapshot lacks is removed (the safety snapshot holds it)")
            #expect(read(studies + "/work.tmp") == "new")
            #expect(read(studies + "/2025/scan.tmp") == "new deep")
            #expect(read(studies + "/cache/c.bin") == "cached")
            #expect(read(studies + "/2025/cache/n.bin") == "nested cache")
            let safety = try #require(outcome.safetySnapshotID)
            let back = try await service.restore(SourceRestoreRequest(snapshot: safety))
            #expect(back.sources.count == 1)
            #expect(read(studies + "/b.txt") == "added later", "the safety snapshot holds what the restore replaced")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("bunker-") }
            #expect(leftovers.isEmpty, "no staging directory is left behind: \(leftovers)")
        }
    }

    /// A restore killed before its first journal was written leaves a staging directory that
    /// is empty or holds only `journal.tmp`; the next restore removes it. A directory under a
    /// staging name that holds anything else is not Bunker's to remove.
    @Test func aStagingDirectoryKilledBeforeItsJournalIsRemovedByTheNextRestore() async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            try write("a", studies + "/a.txt")
            let service = try await service(dir)
            let backup = try await service.backup(SourceBackupRequest(type: .files))
            try FileManager.default.createDirectory(atPath: dir + "/.studies.bunker-restore-0a1b2c3d", withIntermediateDirectories: true)
            try write(#"{"phase":"sta"#, dir + "/.studies.bunker-restore-4e5f6a7b/journal.tmp")
            try write("someone's", dir + "/.studies.bunker-restore-8c9d0e1f/notes.txt")
            try write("changed", studies + "/a.txt")
            _ = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
            #expect(read(studies + "/a.txt") == "a")
            let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("bunker-restore") }
            #expect(left == [".studies.bunker-restore-8c9d0e1f"], "\(left)")
            #expect(read(dir + "/.studies.bunker-restore-8c9d0e1f/notes.txt") == "someone's")
        }
    }

    /// Entries the safety backup could not capture (here, in a repository of format version 2:
    /// a FIFO and a name that is not UTF-8) are left exactly where they are.
    @Test func whatTheSafetyBackupCouldNotCaptureStays() async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            try write("a", studies + "/a.txt")
            let configured = try await service(dir)
            try FileManager.default.removeItem(atPath: dir + "/repo")
            var config = RepositoryConfig.new(compressionLevel: 3, chunker: TestRepository.smallChunks, packSize: 512 << 10)
            config.version = 2
            let storage = try StorageLocation.storage(for: dir + "/repo", create: true)
            let repository = try await Repository.create(storage: storage, password: TestRepository.password, config: config, kdf: .testing)
            let service = BunkerService(configuration: configured.configuration, repository: repository)
            let backup = try await service.backup(SourceBackupRequest(type: .files))
            #expect(mkfifo(studies + "/pipe", 0o600) == 0)
            let latin1 = Array("r".utf8) + [0xE9] + Array("sum".utf8) + [0xE9] + Array(".txt".utf8)
            let root = try DirectoryHandle(path: studies)
            let fd = FileName.with(latin1) { openat(root.fd, $0, O_WRONLY | O_CREAT, 0o644) }
            #expect(fd >= 0)
            close(fd)
            try write("changed", studies + "/a.txt")

            let outcome = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
            #expect(outcome.safetySnapshotID != nil)
            var st = stat()
            #expect(lstat(studies + "/pipe", &st) == 0 && st.st_mode & S_IFMT == S_IFIFO, "the FIFO stays")
            #expect(try root.status(of: latin1) == nil, "the old directory is gone")
            #expect(try DirectoryHandle(path: studies).status(of: latin1) != nil, "the file named in Latin-1 stays")
            #expect(read(studies + "/a.txt") == "a")
        }
    }

    @Test func aKeptPathThatTheSnapshotAlsoHasIsRefusedBeforeAnythingChanges() async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            try write("a", studies + "/a.txt")
            try write("old report", studies + "/report.tmp")
            // The snapshot is taken without excludes, then the source starts excluding *.tmp.
            let before = try await service(dir + "/first", path: studies, excludes: "[]")
            let backup = try await before.backup(SourceBackupRequest(type: .files))
            let after = try await makeService(in: dir + "/second", sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(studies)"
                exclude = ["*.tmp"]
                """)
            try FileManager.default.removeItem(atPath: dir + "/second/repo")
            try FileManager.default.copyItem(atPath: dir + "/first/repo", toPath: dir + "/second/repo")
            let reopened = BunkerService(configuration: after.configuration, repository: try await TestRepository.open(at: dir + "/second/repo"))
            try write("new report", studies + "/report.tmp")
            try write("changed", studies + "/a.txt")
            do {
                _ = try await reopened.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
                Issue.record("the restore must refuse")
            } catch let error as BunkerError {
                #expect(error.message.contains("report.tmp"), "\(error.message)")
                // Not a command line the user got wrong (exit 64): the live tree is in the way.
                #expect(error.code == .objectExists)
                #expect(error.message.contains("Nothing was changed") && !error.message.contains("puts it back"), "\(error.message)")
            }
            #expect(read(studies + "/report.tmp") == "new report")
            #expect(read(studies + "/a.txt") == "changed", "nothing was touched")
        }
    }

    /// A source that is a mount point is staged inside it: no EXDEV, and excluded paths stay.
    @Test func aSourceThatIsAMountPointRestoresInPlace() async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            mkdir(studies, 0o755)
            try await withTmpfs(at: studies, size: "8m") {
                try write("a", studies + "/a.txt")
                try write("b", studies + "/sub/b.txt")
                try write("cached", studies + "/cache/c.bin")
                let service = try await service(dir)
                let backup = try await service.backup(SourceBackupRequest(type: .files))
                try write("changed", studies + "/a.txt")
                try write("new", studies + "/sub/new.tmp")
                try write("gone soon", studies + "/extra.txt")
                _ = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
                #expect(read(studies + "/a.txt") == "a")
                #expect(read(studies + "/sub/b.txt") == "b")
                #expect(read(studies + "/sub/new.tmp") == "new")
                #expect(read(studies + "/cache/c.bin") == "cached")
                #expect(!FileManager.default.fileExists(atPath: studies + "/extra.txt"))
                let leftovers = try FileManager.default.contentsOfDirectory(atPath: studies).filter { $0.contains("bunker-") }
                #expect(leftovers.isEmpty, "\(leftovers)")
            }
        }
    }

    /// A mount point inside the tree cannot be swapped with it: refused, nothing touched.
    @Test func aMountPointInsideTheTreeIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            try write("a", studies + "/a.txt")
            mkdir(studies + "/volume", 0o755)
            try await withTmpfs(at: studies + "/volume", size: "4m") {
                try write("on the volume", studies + "/volume/v.txt")
                let service = try await service(dir)
                let backup = try await service.backup(SourceBackupRequest(type: .files))
                try write("changed", studies + "/a.txt")
                do {
                    _ = try await service.restore(SourceRestoreRequest(snapshot: backup.snapshotID.hex))
                    Issue.record("the restore must refuse")
                } catch let error as BunkerError {
                    #expect(error.message.contains("volume is a mount point"), "\(error.message)")
                }
                #expect(read(studies + "/a.txt") == "changed")
                #expect(read(studies + "/volume/v.txt") == "on the volume")
            }
        }
    }

    /// A restore that does not fit fails while staging, before the live tree is touched.
    @Test func aRestoreThatDoesNotFitLeavesTheLiveTreeAsItWas() async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            mkdir(studies, 0o755)
            try await withTmpfs(at: studies, size: "3m") {
                try TreeGenerator.writeRandomFile(studies + "/big.bin", size: 1_800_000, seed: 1)
                let service = try await service(dir)
                let backup = try await service.backup(SourceBackupRequest(type: .files))
                try FileManager.default.removeItem(atPath: studies + "/big.bin")
                try TreeGenerator.writeRandomFile(studies + "/other.bin", size: 1_800_000, seed: 2)
                let before = fileBytes(studies + "/other.bin")
                var request = SourceRestoreRequest(snapshot: backup.snapshotID.hex)
                request.safetyBackup = false
                await #expect(throws: BunkerError.self) { _ = try await service.restore(request) }
                #expect(fileBytes(studies + "/other.bin") == before)
                #expect(!FileManager.default.fileExists(atPath: studies + "/big.bin"))
                let leftovers = try FileManager.default.contentsOfDirectory(atPath: studies).filter { $0.contains("bunker-") }
                #expect(leftovers.isEmpty, "\(leftovers)")
            }
        }
    }

    @Test func aRepositoryInsideAFilesSourceIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir + "/studies", 0o755)
            symlink(dir + "/studies", dir + "/link")
            for repository in [dir + "/studies/backups", dir + "/link/backups"] {
                let text = """
                    data_dir = "\(dir)/data"

                    [repository]
                    path = "\(repository)"

                    [[source]]
                    name = "studies"
                    kind = "files"
                    path = "\(dir)/studies"
                    """
                #expect(throws: BunkerError.self, "\(repository)") {
                    _ = try Configuration(text: text, file: dir + "/bunker.toml", environment: [:])
                }
            }
            let outside = try Configuration(text: """
                data_dir = "\(dir)/data"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/link"
                """, file: dir + "/bunker.toml", environment: [:])
            #expect(throws: BunkerError.self) { try outside.checkRepositoryIsOutsideSources(dir + "/studies/repo") }
            try outside.checkRepositoryIsOutsideSources(dir + "/elsewhere")
        }
    }

    /// Names a snapshot records about its sources build paths: a forged one that is not a plain
    /// name is refused, and nothing outside the target is created.
    @Test(arguments: [("files", "../outside-src", nil), ("sqlite", "app-db", "../../outside/pwn.db")] as [(String, String, String?)])
    func forgedSourceNamesCannotLeadARestoreOutsideItsTarget(kind: String, name: String, file: String?) async throws {
        try await withTemporaryDirectory { dir in
            let service = try await service(dir)
            let forge = SnapshotForge(service.repository)
            let content = try await forge.file(Array((file.map { ($0 as NSString).lastPathComponent } ?? "x").utf8), "pwned")
            var record = SnapshotSource(name: name, kind: kind, origin: "/forged")
            if let file { record.details = ["file": file] }
            let id = try await forge.snapshot([try await forge.directory(Array(name.utf8), [content])], sources: [record], backupType: "full")
            let target = dir + "/restore/target"
            var request = SourceRestoreRequest(snapshot: id.hex)
            request.target = .directory(target)
            await #expect(throws: BunkerError.self) { _ = try await service.restore(request) }
            #expect(!FileManager.default.fileExists(atPath: dir + "/restore/outside-src"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/outside"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/restore/outside"))
            let check = try await Checker(repository: service.repository).check(readData: false)
            #expect(check.errors.contains { $0.kind == "damaged_snapshot" }, "\(check.errors.map(\.message))")
        }
    }
}
