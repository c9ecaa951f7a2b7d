import BunkerCore
import BunkerTesting
import Foundation
import Testing

private func env(_ repo: String) -> [String: String] {
    ["BUNKER_REPOSITORY": repo, "BUNKER_PASSWORD": TestRepository.password]
}

private func json(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}

@Suite(.serialized) struct CommandLineTests {
    @Test func backupRestoreVerifyThroughTheCommandLine() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = env(dir + "/repo")

            let backup = try BunkerProcess.run(["backup", dir + "/src", "--tag", "daily", "--description", "first", "--json"], environment: e)
            #expect(backup.status == 0, "\(backup.stderr)")
            let result = try #require(try json(backup.stdout) as? [String: Any])
            let id = try #require(result["snapshot_id"] as? String)
            #expect(id.count == 64)
            #expect(result["tags"] as? [String] == ["daily"])
            let summary = try #require(result["summary"] as? [String: Any])
            #expect(summary["files_new"] as? Int == 62)

            let list = try BunkerProcess.run(["snapshots", "--json"], environment: e)
            let snapshots = try #require(try json(list.stdout) as? [[String: Any]])
            #expect(snapshots.map { $0["id"] as? String } == [id])
            #expect(snapshots.first?["description"] as? String == "first")

            let restore = try BunkerProcess.run(["restore", String(id.prefix(8)), "--target", dir + "/out"], environment: e)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(restore.stdout.contains("SHA-256 checked"))
            #expect(compareTrees(dir + "/src", dir + "/out/src") == [])

            // Something in the target's way (a link where a folder goes) is not followed, and is
            // told as the target's problem, not as damage to the snapshot.
            try FileManager.default.createDirectory(atPath: dir + "/blocked/src", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: dir + "/blocked/src/docs", withDestinationPath: dir + "/elsewhere")
            let blocked = try BunkerProcess.run(["restore", String(id.prefix(8)), "--target", dir + "/blocked"], environment: e)
            #expect(blocked.status == 7, "\(blocked.stderr)")
            #expect(blocked.stdout.contains("the target was in the way") && !blocked.stdout.contains("see the damage"), "\(blocked.stdout)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/elsewhere").isEmpty)
            let blockedJSON = try BunkerProcess.run(["restore", String(id.prefix(8)), "--target", dir + "/blocked", "--json"], environment: e)
            let failures = try #require(((try json(blockedJSON.stdout) as? [String: Any])?["report"] as? [String: Any])?["failures"] as? [[String: Any]])
            #expect(!failures.isEmpty && failures.allSatisfy { $0["in_target"] as? Bool == true }, "\(failures)")

            let verify = try BunkerProcess.run(["verify", "--read-data", "--json"], environment: e)
            #expect(verify.status == 0)
            let report = try #require(try json(verify.stdout) as? [String: Any])
            #expect(report["ok"] as? Bool == true)

            let stats = try BunkerProcess.run(["stats", "--json"], environment: e)
            let s = try #require(try json(stats.stdout) as? [String: Any])
            #expect(s["snapshots"] as? Int == 1)
            #expect((s["stored_bytes"] as? Int ?? 0) > 0)

            let show = try BunkerProcess.run(["show", "latest", "--json"], environment: e)
            let shown = try #require(try json(show.stdout) as? [String: Any])
            let entries = try #require(shown["entries"] as? [[String: Any]])
            #expect(entries.contains { $0["path"] as? String == "/src/docs/link-relative" && $0["link_target"] as? String == "../studies/2024/image-large.dcm" })
        }
    }

    @Test func exitCodesAndErrorsAreDocumentedOnes() async throws {
        try await withTemporaryDirectory { dir in
            _ = try await TestRepository.create(at: dir + "/repo")
            let wrong = try BunkerProcess.run(["snapshots"], environment: ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": "nope"])
            #expect(wrong.status == 5)
            #expect(wrong.stderr.contains("Wrong password"))

            let missing = try BunkerProcess.run(["snapshots", "--json"], environment: ["BUNKER_REPOSITORY": dir + "/none", "BUNKER_PASSWORD": "x"])
            #expect(missing.status == 4)
            let error = try #require(try json(missing.stdout) as? [String: String])
            #expect(error["error"] == "repository_not_found")
            #expect(error["message"]?.contains("bunker init") == true)

            let noPassword = try BunkerProcess.run(["snapshots"], environment: ["BUNKER_REPOSITORY": dir + "/repo"])
            #expect(noPassword.status == 64)
            #expect(noPassword.stderr.contains("BUNKER_PASSWORD"))

            let badLevel = try BunkerProcess.run(["backup", dir, "--compression-level", "40"], environment: env(dir + "/repo"))
            #expect(badLevel.status == 64)
            #expect(badLevel.stderr.contains("1 (fastest) to 19"))

            let unknown = try BunkerProcess.run(["restore", "deadbeef", "--target", dir + "/out"], environment: env(dir + "/repo"))
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("No snapshot matches"))
        }
    }

    /// The destination of a copy has its own password options: errors about it name them, and a
    /// destination that is neither a configured name nor a repository is said to be that.
    @Test func copyDestinationErrorsNameTheDestinationsOwnOptions() async throws {
        try await withTemporaryDirectory { dir in
            _ = try await TestRepository.create(at: dir + "/repo")
            _ = try await TestRepository.create(at: dir + "/other")
            var e = env(dir + "/repo")
            e["BUNKER_DATA_DIR"] = dir + "/data"
            let nowhere = try BunkerProcess.run(["copy", "--to", dir + "/nosuch", "--json"], environment: e)
            #expect(nowhere.status == 4 && nowhere.stdout.contains("names no repository"), "\(nowhere.stdout)\(nowhere.stderr)")
            let noPassword = try BunkerProcess.run(["copy", "--to", dir + "/other"], environment: e)
            #expect(noPassword.status == 64 && noPassword.stderr.contains("BUNKER_TO_PASSWORD") && noPassword.stderr.contains("--to-password-file"), "\(noPassword.stderr)")
            e["BUNKER_TO_PASSWORD"] = "wrong"
            let wrong = try BunkerProcess.run(["copy", "--to", dir + "/other"], environment: e)
            #expect(wrong.status == 5 && wrong.stderr.contains("destination") && wrong.stderr.contains("BUNKER_TO_PASSWORD"), "\(wrong.stderr)")
        }
    }

    /// A command line the parser refuses, or one refused before the command runs, still answers
    /// `--json` with the error object on standard output (and the usage on standard error).
    @Test(arguments: [
        ["snapshots", "--bogus", "--json"],
        ["restore", "latest", "--source", "clinic", "--to-time", "yesterday", "--json"],
        ["restore", "latest", "--to-time", "2026-12-03 14:00:00+00", "--latest", "--json"],
        ["snapshots", "--repo", "/nowhere", "--repository", "offsite", "--json"],
    ])
    func refusedCommandLinesAnswerJSON(arguments: [String]) async throws {
        try await withTemporaryDirectory { dir in
            let refused = try BunkerProcess.run(arguments, environment: env(dir + "/repo"))
            #expect(refused.status == 64, "\(refused.stderr)")
            let error = try #require(try json(refused.stdout) as? [String: String], "stdout: \(refused.stdout)")
            #expect(error["error"] == "invalid_argument" && error["message"]?.isEmpty == false, "\(error)")
            #expect(!(error["message"] ?? "").contains("USAGE"), "the message, not the usage: \(error)")
        }
    }

    @Test func initCreatesARepositoryAndRefusesToOverwriteIt() async throws {
        try await withTemporaryDirectory { dir in
            let e = ["BUNKER_PASSWORD": "pw", "BACKUP_COMPRESSION_LEVEL": "6"]
            let first = try BunkerProcess.run(["init", "--repo", dir + "/repo", "--json"], environment: e)
            #expect(first.status == 0, "\(first.stderr)")
            let created = try #require(try json(first.stdout) as? [String: Any])
            #expect(created["compression_level"] as? Int == 6)
            #expect(created["version"] as? Int == 3, "new repositories have format version 3 (bundles, names as bytes, special files)")
            let second = try BunkerProcess.run(["init", "--repo", dir + "/repo"], environment: e)
            #expect(second.status != 0)
            #expect(second.stderr.contains("already exists"))
        }
    }

    /// The level comes from the flag, else the configuration: `compression_level`, with
    /// BACKUP_COMPRESSION_LEVEL over it (read, and refused when wrong, by the configuration alone).
    @Test func initTakesTheLevelFromTheConfigurationWithTheVariableOverIt() async throws {
        try await withTemporaryDirectory { dir in
            let config = dir + "/bunker.toml"
            try "data_dir = \"\(dir)/data\"\n[repository]\ncompression_level = 7\n".write(toFile: config, atomically: true, encoding: .utf8)
            func level(_ name: String, _ environment: [String: String], flag: [String] = []) throws -> Int? {
                let run = try BunkerProcess.run(["init", "--repo", dir + "/" + name, "--config", config, "--json"] + flag,
                                                environment: environment.merging(["BUNKER_PASSWORD": "pw"]) { a, _ in a })
                #expect(run.status == 0, "\(run.stderr)")
                return try (json(run.stdout) as? [String: Any])?["compression_level"] as? Int
            }
            #expect(try level("file", [:]) == 7)
            #expect(try level("variable", ["BACKUP_COMPRESSION_LEVEL": "9"]) == 9)
            #expect(try level("flag", ["BACKUP_COMPRESSION_LEVEL": "9"], flag: ["--compression-level", "2"]) == 2)
            let wrong = try BunkerProcess.run(["init", "--repo", dir + "/wrong", "--config", config],
                                              environment: ["BUNKER_PASSWORD": "pw", "BACKUP_COMPRESSION_LEVEL": "max"])
            #expect(wrong.status == 64)
            #expect(wrong.stderr.contains("BACKUP_COMPRESSION_LEVEL=max is not a zstd level from 1 to 19"), "\(wrong.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/wrong"))
        }
    }

    /// A repository inside a files source would be moved aside and deleted by a restore in place.
    @Test func initAndBackupRefuseARepositoryInsideAFilesSource() async throws {
        try await withTemporaryDirectory { dir in
            mkdir(dir + "/studies", 0o755)
            try """
                data_dir = "\(dir)/data"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            var e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
            let refused = try BunkerProcess.run(["init", "--repo", dir + "/studies/repo"], environment: e)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("inside source studies"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/studies/repo"))

            // A repository made elsewhere and reached through BUNKER_REPOSITORY: backup refuses it too.
            _ = try await TestRepository.create(at: dir + "/studies/made-elsewhere")
            e["BUNKER_REPOSITORY"] = dir + "/studies/made-elsewhere"
            let backup = try BunkerProcess.run(["backup"], environment: e)
            #expect(backup.status != 0)
            #expect(backup.stderr.contains("inside source studies"), "\(backup.stderr)")

            // A data directory inside the source: refused by init and snapshots too, which open
            // no catalog, before anything is created.
            try """
                data_dir = "\(dir)/studies/bunker-data"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """.write(toFile: dir + "/inside.toml", atomically: true, encoding: .utf8)
            let inside = ["BUNKER_CONFIG": dir + "/inside.toml", "BUNKER_PASSWORD": TestRepository.password]
            for arguments in [["init", "--repo", dir + "/elsewhere"], ["snapshots", "--repo", dir + "/studies/made-elsewhere"]] {
                let refused = try BunkerProcess.run(arguments, environment: inside)
                #expect(refused.status == 64, "\(arguments): \(refused.stderr)")
                #expect(refused.stderr.contains("data_dir") && refused.stderr.contains("inside source studies"), "\(refused.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/elsewhere"))
        }
    }

    /// `restore latest` after a restore in place: the restore's safety copy is the newest
    /// snapshot, but `latest` is still the newest backup, and with --source one that holds it.
    @Test func latestIsNeverARestoresSafetyCopy() async throws {
        try await withTemporaryDirectory { dir in
            for name in ["studies", "letters"] {
                mkdir(dir + "/" + name, 0o755)
                try Data("first \(name)".utf8).write(to: URL(fileURLWithPath: dir + "/\(name)/a.txt"))
            }
            try """
                data_dir = "\(dir)/data"

                [repository]
                path = "\(dir)/repo"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"

                [[source]]
                name = "letters"
                kind = "files"
                path = "\(dir)/letters"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password]
            #expect(try BunkerProcess.run(["init"], environment: e).status == 0)
            let backup = try BunkerProcess.run(["backup", "--json"], environment: e)
            let id = try #require((try json(backup.stdout) as? [String: Any])?["snapshot_id"] as? String, "\(backup.stderr)")

            try Data("changed".utf8).write(to: URL(fileURLWithPath: dir + "/studies/a.txt"))
            let first = try BunkerProcess.run(["restore", "latest", "--source", "studies", "--reason", "test", "--json"], environment: e)
            #expect(first.status == 0, "\(first.stderr)")
            let safety = try #require((try json(first.stdout) as? [String: Any])?["safety_snapshot_id"] as? String)
            #expect(safety != id)

            // The newest snapshot is now the safety copy of studies alone.
            let second = try BunkerProcess.run(["restore", "latest", "--source", "letters", "--reason", "test", "--json"], environment: e)
            #expect(second.status == 0, "\(second.stderr)")
            #expect((try? json(second.stdout) as? [String: Any])?["snapshot_id"] as? String == id, "\(second.stdout)")
            let third = try BunkerProcess.run(["restore", "latest", "--reason", "test", "--json"], environment: e)
            #expect(third.status == 0, "\(third.stderr)")
            #expect((try? json(third.stdout) as? [String: Any])?["snapshot_id"] as? String == id, "\(third.stdout)")
            #expect(try String(contentsOfFile: dir + "/studies/a.txt", encoding: .utf8) == "first studies")
            // A safety copy is still restored by its id.
            let back = try BunkerProcess.run(["restore", String(safety.prefix(8)), "--target", dir + "/out"], environment: e)
            #expect(back.status == 0, "\(back.stderr)")
            #expect(try String(contentsOfFile: dir + "/out/studies/a.txt", encoding: .utf8) == "changed")
        }
    }

    @Test func keyCommandsAddAndRemovePasswords() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let e = env(dir + "/repo")
            let add = try BunkerProcess.run(["key", "add", "--json"], environment: e.merging(["BUNKER_NEW_PASSWORD": "second"]) { $1 })
            #expect(add.status == 0, "\(add.stderr)")
            let list = try BunkerProcess.run(["key", "list", "--json"], environment: ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": "second"])
            let keys = try #require(try json(list.stdout) as? [[String: Any]])
            #expect(keys.count == 2)
            #expect(keys.filter { $0["current"] as? Bool == true }.count == 1)
            let remove = try BunkerProcess.run(["key", "remove", String(repo.keyName.prefix(8))], environment: ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": "second"])
            #expect(remove.status == 0, "\(remove.stderr)")
            #expect(try BunkerProcess.run(["snapshots"], environment: e).status == 5)
        }
    }

    /// Changing who can open the repository goes through the service layer, so it is audited.
    @Test func keyChangesAreAudited() async throws {
        try await withTemporaryDirectory { dir in
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = env(dir + "/repo").merging(["BUNKER_DATA_DIR": dir + "/data"]) { $1 }
            let add = try BunkerProcess.run(["key", "add", "--json"], environment: e.merging(["BUNKER_NEW_PASSWORD": "second"]) { $1 })
            #expect(add.status == 0, "\(add.stderr)")
            let added = try #require((try json(add.stdout) as? [String: Any])?["id"] as? String)
            let passwd = try BunkerProcess.run(["key", "passwd"], environment: e.merging(["BUNKER_NEW_PASSWORD": "third"]) { $1 })
            #expect(passwd.status == 0, "\(passwd.stderr)")
            let remove = try BunkerProcess.run(["key", "remove", String(added.prefix(8))], environment: e.merging(["BUNKER_PASSWORD": "third"]) { $1 })
            #expect(remove.status == 0, "\(remove.stderr)")
            let audit = try BunkerProcess.run(["audit", "list", "--json"], environment: e)
            #expect(audit.status == 0, "\(audit.stderr)")
            let rows = try #require(try json(audit.stdout) as? [[String: Any]])
            let ends = rows.filter { ($0["action"] as? String)?.hasPrefix("key.") == true && $0["outcome"] as? String == "success" }
            #expect(ends.compactMap { $0["action"] as? String } == ["key.add", "key.passwd", "key.remove"], "\(rows)")
            #expect(ends.first?["target"] as? String == added)
        }
    }
}
