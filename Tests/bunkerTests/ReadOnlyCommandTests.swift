import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation
import Testing

/// `--read-only` (and `read_only = true`): on a machine rebuilt after a disaster, credentials
/// that may only read the off-site bucket still list, verify and restore; nothing is written
/// into the repository, and what would write is refused before it starts.
@Suite(.serialized) struct ReadOnlyCommandTests {
    private func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    /// The repository's objects, by name and size.
    private func objects(_ server: SeaweedFS, _ location: String) async throws -> [String: Int] {
        let storage = try S3Backend.open(location, environment: S3Environment(server.awsEnvironment))
        var all: [String: Int] = [:]
        for kind in ObjectKind.allCases {
            for info in try await storage.list(kind) { all["\(info.handle)"] = info.size }
        }
        return all
    }

    @Test func credentialsThatMayOnlyReadListVerifyAndRestoreWithReadOnly() async throws {
        try await withSeaweedFS(withReader: true) { server in
            try await withTemporaryDirectory { dir in
                try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
                let location = "s3://\(server.bucket)/offsite"
                _ = try await TestRepository.create(storage: S3Backend.open(location, environment: S3Environment(server.awsEnvironment)))
                let writer = server.commandEnvironment(server.awsEnvironment, repository: location, dataDirectory: dir + "/data")
                let backup = try BunkerProcess.run(["backup", dir + "/src", "--json"], environment: writer)
                #expect(backup.status == 0, "\(backup.stderr)")
                let id = try #require((try json(backup.stdout) as? [String: Any])?["snapshot_id"] as? String)
                let stored = try await objects(server, location)

                // A new machine, with credentials that may only read.
                let reader = server.commandEnvironment(server.readerEnvironment, repository: location, dataDirectory: dir + "/new-data")

                // Without --read-only the lock cannot be written: the error says what to add,
                // and nothing was restored.
                let refused = try BunkerProcess.run(["restore", "latest", "--target", dir + "/refused"], environment: reader)
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("403") && refused.stderr.contains("--read-only"), "\(refused.stderr)")
                #expect(!FileManager.default.fileExists(atPath: dir + "/refused/src"))

                let list = try BunkerProcess.run(["snapshots", "--read-only", "--json"], environment: reader)
                #expect(list.status == 0, "\(list.stderr)")
                #expect((try json(list.stdout) as? [[String: Any]])?.map { $0["id"] as? String } == [id])

                let verify = try BunkerProcess.run(["verify", "--read-data", "--read-only", "--json"], environment: reader)
                #expect(verify.status == 0, "\(verify.stderr)")
                #expect((try json(verify.stdout) as? [String: Any])?["ok"] as? Bool == true, "\(verify.stdout)")

                let restore = try BunkerProcess.run(["restore", "latest", "--target", dir + "/out", "--read-only"], environment: reader)
                #expect(restore.status == 0, "\(restore.stderr)")
                #expect(compareTrees(dir + "/src", dir + "/out/src") == [])
                #expect(!restore.stderr.contains("warning"), "\(restore.stderr)")
                // The restore is in this machine's audit trail, which verifies.
                let audit = try BunkerProcess.run(["audit", "verify"], environment: reader)
                #expect(audit.status == 0, "\(audit.stderr)")

                // The same through bunker.toml's read_only = true.
                try """
                [repository]
                url = "\(location)"
                read_only = true
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
                var configured = reader
                configured["BUNKER_REPOSITORY"] = nil
                configured["BUNKER_CONFIG"] = dir + "/bunker.toml"
                let again = try BunkerProcess.run(["restore", String(id.prefix(8)), "--target", dir + "/again"], environment: configured)
                #expect(again.status == 0, "\(again.stderr)")
                #expect(compareTrees(dir + "/src", dir + "/again/src") == [])
                // The primary's read_only does not follow it into a copy's destination.
                _ = try await TestRepository.create(at: dir + "/local-copy")
                configured["BUNKER_TO_PASSWORD"] = TestRepository.password
                let copy = try BunkerProcess.run(["copy", "--to", dir + "/local-copy", "--latest"], environment: configured)
                #expect(copy.status == 0, "\(copy.stderr)")

                // Commands that write are refused before they start, even with credentials that
                // could write, and say why.
                for command in [["backup", dir + "/src"], ["prune"], ["forget", "--keep-last", "1"]] {
                    let result = try BunkerProcess.run(command + ["--read-only"], environment: writer)
                    #expect(result.status != 0, "\(command)")
                    #expect(result.stderr.contains("The repository is open read-only"), "\(command): \(result.stderr)")
                }
                // Nothing of all that wrote, changed or deleted an object.
                #expect(try await objects(server, location) == stored)
            }
        }
    }

    /// The DermAI scenario 4 with credentials that may only read: configured sources restored in
    /// place onto a new machine where they are empty (no safety backup is needed); over live
    /// data, where one would be, the restore is refused before anything is read or changed.
    @Test func sourcesComeBackInPlaceOntoANewMachineAndLiveDataIsNeverOverwritten() async throws {
        try await withSeaweedFS(withReader: true) { server in
            try await withTemporaryDirectory { dir in
                let location = "s3://\(server.bucket)/clinic"
                _ = try await TestRepository.create(storage: S3Backend.open(location, environment: S3Environment(server.awsEnvironment)))
                try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 1 << 20)
                try """
                [repository]
                url = "\(location)"

                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
                let writer = server.commandEnvironment(server.awsEnvironment, config: dir + "/bunker.toml", dataDirectory: dir + "/data")
                let backup = try BunkerProcess.run(["backup"], environment: writer)
                #expect(backup.status == 0, "\(backup.stderr)")
                try FileManager.default.moveItem(atPath: dir + "/studies", toPath: dir + "/kept")

                let reader = server.commandEnvironment(server.readerEnvironment, config: dir + "/bunker.toml", dataDirectory: dir + "/new-data")
                let restore = try BunkerProcess.run(["restore", "latest", "--read-only", "--reason", "hardware failure"], environment: reader)
                #expect(restore.status == 0, "\(restore.stderr)")
                #expect(compareTrees(dir + "/kept", dir + "/studies") == [])

                // Now there is live data: a safety backup would be needed, and cannot be stored.
                try "changed since\n".write(toFile: dir + "/studies/new-note.txt", atomically: true, encoding: .utf8)
                let refused = try BunkerProcess.run(["restore", "latest", "--read-only"], environment: reader)
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("live data of studies") && refused.stderr.contains("nothing was restored"), "\(refused.stderr)")
                #expect(FileManager.default.fileExists(atPath: dir + "/studies/new-note.txt"))
            }
        }
    }
}
