import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// A restore in place of a file tree killed with SIGKILL at each step leaves the live tree either
/// as it was or fully restored (what the restore keeps included), and the next restore completes.
@Suite(.serialized) struct FilesRestoreCrashTests {
    /// path → content of every regular file below `root` (symlinks as "-> target"); the hidden
    /// staging and set-aside directories are reported as they are, so a leftover is a difference.
    static func contents(_ root: String) -> [String: String] {
        var result: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [:] }
        for case let path as String in walker {
            var st = stat()
            guard lstat(root + "/" + path, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFREG: result[path] = (try? String(contentsOfFile: root + "/" + path, encoding: .utf8)) ?? "?"
            case S_IFLNK: result[path] = "-> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + path)) ?? "?")
            case S_IFDIR: result[path + "/"] = ""
            default: result[path] = "special"
            }
        }
        return result
    }

    static func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    /// Failpoints of a restore in place of a file tree, in the order the restore reaches them.
    static let failpoints = [
        "restore-after-safety-backup",  // the safety snapshot is written, nothing else
        "restore-file:3",               // mid-staging
        "files-restore-staged",         // staged, before the plan
        "files-restore-link:2",         // mid-way through linking kept entries
        "files-restore-before-swap",    // every kept entry linked, before the exchange
        "files-restore-after-swap",     // exchanged, journal not yet updated
        "files-restore-before-cleanup", // journal says cleaning, old tree still there
    ]

    @Test(arguments: failpoints)
    func aKilledRestoreLeavesTheTreeWholeAndTheNextOneCompletes(failpoint: String) async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            for i in 0..<8 { try Self.write("original \(i)", studies + "/series/\(i).dcm") }
            try Self.write("report", studies + "/report.txt")
            try Self.write("cache", studies + "/cache/c.bin")
            try """
                data_dir = "\(dir)/data"

                [repository]
                path = "\(dir)/repo"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(studies)"
                exclude = ["*.tmp", "cache/"]
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
            let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let backupID = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["snapshot_id"] as? String)
            let restored = Self.contents(studies)

            // The application changes the tree; three kept entries appear (two of them deep).
            for i in 0..<8 { try Self.write("changed \(i)", studies + "/series/\(i).dcm") }
            try FileManager.default.removeItem(atPath: studies + "/report.txt")
            try Self.write("new", studies + "/new.txt")
            try Self.write("work", studies + "/work.tmp")
            try Self.write("deep work", studies + "/series/scan.tmp")
            try Self.write("deeper", studies + "/series/cache/x.bin")
            let before = Self.contents(studies)
            var expected = restored
            for kept in ["work.tmp", "series/scan.tmp", "series/cache/", "series/cache/x.bin"] { expected[kept] = before[kept] }

            let killed = try BunkerProcess.run(["restore", backupID], environment: e.merging(["BUNKER_FAULT_KILL": failpoint]) { $1 })
            #expect(killed.killed && killed.status == SIGKILL, "killed at \(failpoint): \(killed.stdout) \(killed.stderr)")
            let after = Self.contents(studies)
            #expect(after == before || after == expected, "at \(failpoint) the live tree is as it was or fully restored: \(after)")

            let again = try BunkerProcess.run(["restore", backupID, "--no-safety-backup"], environment: e)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(Self.contents(studies) == expected, "the next restore completes, keeping what it must")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("bunker-") }
            #expect(leftovers.isEmpty, "\(leftovers)")

            // And the safety snapshot of the killed run holds the state before it.
            let list = try BunkerProcess.run(["snapshots", "--json"], environment: e)
            let snapshots = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            let safety = try #require(snapshots.first { ($0["tags"] as? [String])?.contains("safety") == true }?["id"] as? String)
            let out = try BunkerProcess.run(["restore", safety, "--target", dir + "/before"], environment: e)
            #expect(out.status == 0, "\(out.stderr)")
            #expect(try String(contentsOfFile: dir + "/before/studies/new.txt", encoding: .utf8) == "new")
        }
    }

    /// The same for a source that is a mount point, swapped entry by entry.
    @Test(arguments: ["files-restore-link:1", "files-restore-swap-entry:1", "files-restore-swap-entry:2", "files-restore-before-cleanup"])
    func aKilledRestoreOfAMountPointLeavesTheTreeWhole(failpoint: String) async throws {
        try await withTemporaryDirectory { dir in
            let studies = dir + "/studies"
            mkdir(studies, 0o755)
            try await withTmpfs(at: studies, size: "8m") {
                for name in ["a", "b", "c"] { try Self.write("original \(name)", studies + "/\(name)/file.txt") }
                try """
                    data_dir = "\(dir)/data"

                    [repository]
                    path = "\(dir)/repo"

                    [[source]]
                    name = "studies"
                    kind = "files"
                    path = "\(studies)"
                    exclude = ["*.tmp"]
                    """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
                _ = try await TestRepository.create(at: dir + "/repo")
                let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
                let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
                let backupID = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["snapshot_id"] as? String)
                let restored = Self.contents(studies)
                for name in ["a", "b", "c"] { try Self.write("changed \(name)", studies + "/\(name)/file.txt") }
                try Self.write("top", studies + "/top.tmp")
                try Self.write("deep", studies + "/b/deep.tmp")
                let before = Self.contents(studies)
                var expected = restored
                for kept in ["top.tmp", "b/deep.tmp"] { expected[kept] = before[kept] }

                let killed = try BunkerProcess.run(["restore", backupID], environment: e.merging(["BUNKER_FAULT_KILL": failpoint]) { $1 })
                #expect(killed.killed, "killed at \(failpoint): \(killed.stderr)")
                let again = try BunkerProcess.run(["restore", backupID, "--no-safety-backup"], environment: e)
                #expect(again.status == 0, "\(again.stderr)")
                #expect(Self.contents(studies) == expected, "the next restore completes, keeping what it must")
            }
        }
    }
}
