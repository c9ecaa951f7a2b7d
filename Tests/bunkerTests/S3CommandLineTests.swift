import BunkerCore
import BunkerS3
import BunkerTesting
import Foundation
import Testing

/// The `bunker` binary on a repository in a real S3 server (SeaweedFS): `--repo s3://…` or
/// `BUNKER_REPOSITORY`, credentials from the AWS variables, or the `[repository]` keys.
@Suite(.serialized) struct S3CommandLineTests {
    private func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    @Test func backupRestoreVerifyOnAnS3Repository() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
                let location = "s3://\(server.bucket)/cli"
                _ = try await TestRepository.create(storage: S3Backend.open(location, environment: S3Environment(server.awsEnvironment)))
                var e = server.commandEnvironment(server.awsEnvironment, repository: location, dataDirectory: dir + "/data")

                let backup = try BunkerProcess.run(["backup", dir + "/src", "--json"], environment: e)
                #expect(backup.status == 0, "\(backup.stderr)")
                let id = try #require((try json(backup.stdout) as? [String: Any])?["snapshot_id"] as? String)

                let list = try BunkerProcess.run(["snapshots", "--json"], environment: e)
                #expect((try json(list.stdout) as? [[String: Any]])?.map { $0["id"] as? String } == [id])

                let restore = try BunkerProcess.run(["restore", String(id.prefix(8)), "--target", dir + "/out"], environment: e)
                #expect(restore.status == 0, "\(restore.stderr)")
                #expect(compareTrees(dir + "/src", dir + "/out/src") == [])

                let verify = try BunkerProcess.run(["verify", "--read-data", "--json"], environment: e)
                #expect(verify.status == 0, "\(verify.stderr)")
                #expect((try json(verify.stdout) as? [String: Any])?["ok"] as? Bool == true)

                // Prune lists every object and rewrites the index in the bucket; all still verifies.
                let prune = try BunkerProcess.run(["prune"], environment: e)
                #expect(prune.status == 0, "\(prune.stderr)")
                let again = try BunkerProcess.run(["verify", "--read-data", "--json"], environment: e)
                #expect((try json(again.stdout) as? [String: Any])?["ok"] as? Bool == true, "\(again.stderr)")

                // The same repository through --repo, and a wrong secret named as the cause.
                e["BUNKER_REPOSITORY"] = nil
                let flagged = try BunkerProcess.run(["snapshots", "--repo", location, "--json"], environment: e)
                #expect(flagged.status == 0, "\(flagged.stderr)")
                e["AWS_SECRET_ACCESS_KEY"] = "wrong"
                let refused = try BunkerProcess.run(["snapshots", "--repo", location], environment: e)
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("AWS_SECRET_ACCESS_KEY"), "\(refused.stderr)")
            }
        }
    }

    /// The DermAI cloud tier: the local repository is copied into a bucket, and the bucket alone,
    /// with its credentials and password, brings back data, catalog and audit trail elsewhere.
    @Test func aCopyIntoS3AloneRecoversDataAndTrailInANewDataDirectory() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 1 << 20)
                _ = try await TestRepository.create(at: dir + "/local")
                let local = server.commandEnvironment(server.awsEnvironment, repository: dir + "/local", dataDirectory: dir + "/data")
                for _ in 0..<2 { #expect(try BunkerProcess.run(["backup", dir + "/src"], environment: local).status == 0) }

                let offsite = "s3://\(server.bucket)/offsite"
                var made = server.awsEnvironment
                made["BUNKER_PASSWORD"] = "offsite-password"
                made["BUNKER_FROM_PASSWORD"] = TestRepository.password
                made["BUNKER_DATA_DIR"] = dir + "/data"
                let created = try BunkerProcess.run(["init", "--repo", offsite, "--copy-params-from", dir + "/local"], environment: made)
                #expect(created.status == 0, "\(created.stderr)")
                var copying = local
                copying["BUNKER_TO_PASSWORD"] = "offsite-password"
                let copy = try BunkerProcess.run(["copy", "--to", offsite, "--json"], environment: copying)
                #expect(copy.status == 0, "\(copy.stderr)")
                let report = try #require(try json(copy.stdout) as? [String: Any])
                #expect((report["copied"] as? [Any])?.count == 2 && report["shared_keys"] as? Bool == true, "\(report)")
                let again = try BunkerProcess.run(["copy", "--to", offsite, "--json"], environment: copying)
                #expect((try json(again.stdout) as? [String: Any])?["blobs_copied"] as? Int == 0, "\(again.stdout)\(again.stderr)")

                // A new machine: the bucket, its credentials and the password only.
                var fresh = server.awsEnvironment
                fresh["BUNKER_REPOSITORY"] = offsite
                fresh["BUNKER_PASSWORD"] = "offsite-password"
                fresh["BUNKER_DATA_DIR"] = dir + "/new-machine"
                let catalog = try BunkerProcess.run(["catalog", "restore", "--json"], environment: fresh)
                #expect(catalog.status == 0, "\(catalog.stderr)")
                #expect((try json(catalog.stdout) as? [String: Any])?["backups"] as? Int == 2, "\(catalog.stdout)")
                let trail = try BunkerProcess.run(["audit", "verify"], environment: fresh)
                #expect(trail.status == 0, "\(trail.stderr)\(trail.stdout)")
                let restore = try BunkerProcess.run(["restore", "latest", "--target", dir + "/back"], environment: fresh)
                #expect(restore.status == 0, "\(restore.stderr)")
                #expect(compareTrees(dir + "/src", dir + "/back/src") == [])
                let verify = try BunkerProcess.run(["verify", "--read-data"], environment: fresh)
                #expect(verify.status == 0, "\(verify.stderr)")
            }
        }
    }

    /// An endpoint that is a web server, not S3 (a wrong port, a typo): its 404 pages are not
    /// taken for "no repository there", which would send the user to `bunker init`.
    @Test func anEndpointThatIsNotS3IsCalledThatAndNotAMissingRepository() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/www", withIntermediateDirectories: true)
            let web = try PlainWebServer.start(serving: dir + "/www")
            defer { web.stop() }
            let e = ["AWS_ACCESS_KEY_ID": "clinic", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": web.endpoint, "BUNKER_PASSWORD": "test-password", "BUNKER_DATA_DIR": dir + "/data"]
            for arguments in [["snapshots", "--repo", "s3://clinic-backups/bunker"], ["init", "--repo", "s3://clinic-backups/bunker"]] {
                let outcome = try BunkerProcess.run(arguments, environment: e)
                #expect(outcome.status != 0 && outcome.status != 4, "\(arguments): exit \(outcome.status)")
                #expect(outcome.stderr.contains("does not look like an S3 server"), "\(arguments): \(outcome.stderr)")
                #expect(outcome.stderr.contains(web.endpoint), "\(arguments): \(outcome.stderr)")
                #expect(!outcome.stderr.contains("bunker init`"), "\(arguments): \(outcome.stderr)")
            }
        }
    }

    @Test func s3RepositoryFromTheConfigurationFile() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                try """
                data_dir = "\(dir)/data"
                [repository]
                url = "s3://\(server.bucket)/from-config"
                endpoint = "\(server.endpoint)"
                region = "us-east-1"
                path_style = true
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
                // Credentials only: the endpoint comes from the file.
                let e = ["AWS_ACCESS_KEY_ID": server.accessKeyID, "AWS_SECRET_ACCESS_KEY": server.secretAccessKey, "BUNKER_PASSWORD": "config password"]
                let initialized = try BunkerProcess.run(["init", "--config", dir + "/bunker.toml", "--json"], environment: e)
                #expect(initialized.status == 0, "\(initialized.stderr)")
                #expect((try json(initialized.stdout) as? [String: Any])?["repository"] as? String == "s3://\(server.bucket)/from-config")
                let again = try BunkerProcess.run(["init", "--config", dir + "/bunker.toml"], environment: e)
                #expect(again.status != 0, "a second init must not replace the repository")
                let snapshots = try BunkerProcess.run(["snapshots", "--config", dir + "/bunker.toml", "--json"], environment: e)
                #expect(snapshots.status == 0, "\(snapshots.stderr)")
                #expect((try json(snapshots.stdout) as? [Any])?.isEmpty == true)

                try "[repository]\nurl = \"s3://\(server.bucket)/x\"\nsecret_access_key = \"s\"\n".write(toFile: dir + "/secret.toml", atomically: true, encoding: .utf8)
                let refused = try BunkerProcess.run(["snapshots", "--config", dir + "/secret.toml"], environment: e)
                #expect(refused.status == 64)
                #expect(refused.stderr.contains("never written in the configuration"), "\(refused.stderr)")
            }
        }
    }

    /// The off-site tier: `init --object-lock compliance --lock-days N` on a lock-enabled bucket
    /// probes the bucket, writes every object retained, and `stats` says the repository is
    /// immutable; on a local directory the flag is refused with what to do.
    @Test func initWithObjectLockMakesAnImmutableRepositoryThatStatsReports() async throws {
        try await withSeaweedFS { server in
            try await withTemporaryDirectory { dir in
                let location = "s3://bunker-locked/archive"
                let bucket = try S3Storage(location: S3Location(parsing: location), settings: S3Settings(endpoint: server.endpoint, region: "us-east-1"),
                                           environment: S3Environment(server.awsEnvironment))
                try await bucket.createBucket(objectLock: true)
                try TreeGenerator.makeSampleTree(at: dir + "/src", largeFileSize: 256 << 10)
                var e = server.commandEnvironment(server.awsEnvironment, repository: location, dataDirectory: dir + "/data")

                let created = try BunkerProcess.run(["init", "--object-lock", "compliance", "--lock-days", "3", "--json"], environment: e)
                #expect(created.status == 0, "\(created.stderr)")
                let lock = (try json(created.stdout) as? [String: Any])?["object_lock"] as? [String: Any]
                #expect(lock?["immutable"] as? Bool == true, "\(created.stdout)")
                #expect(lock?["mode"] as? String == "COMPLIANCE")

                let backup = try BunkerProcess.run(["backup", dir + "/src"], environment: e)
                #expect(backup.status == 0, "\(backup.stderr)")
                let pack = try #require(try await bucket.list(.pack).first)
                #expect(try await bucket.retention(of: pack.handle).map { $0.until > Date().addingTimeInterval(2 * 86400) } == true)

                let stats = try BunkerProcess.run(["stats", "--json"], environment: e)
                #expect(stats.status == 0, "\(stats.stderr)")
                let reported = (try json(stats.stdout) as? [String: Any])?["object_lock"] as? [String: Any]
                #expect(reported?["immutable"] as? Bool == true, "\(stats.stdout)")
                #expect(reported?["days"] as? Int == 3)
                let verify = try BunkerProcess.run(["verify", "--json"], environment: e)
                #expect(verify.status == 0, "\(verify.stderr)")
                #expect(((try json(verify.stdout) as? [String: Any])?["object_lock"] as? [String: Any])?["enforced"] as? Bool == true)

                // forget: the snapshot the policy lets go of is kept by its lock, and the text
                // counts it as kept by the lock, not as removed.
                let second = try BunkerProcess.run(["backup", dir + "/src"], environment: e)
                #expect(second.status == 0, "\(second.stderr)")
                let forget = try BunkerProcess.run(["forget", "--keep-last", "1", "--min-age", "0"], environment: e)
                #expect(forget.status == 0, "\(forget.stderr)")
                #expect(forget.stdout.contains("1 snapshot kept, 0 removed, 1 kept by the object lock"), "\(forget.stdout)")
                #expect(forget.stdout.contains("is kept by the object lock until"), "\(forget.stdout)")
                let remaining = try BunkerProcess.run(["snapshots", "--json"], environment: e)
                #expect((try json(remaining.stdout) as? [Any])?.count == 2, "\(remaining.stdout)")

                // The same from bunker.toml: a named repository's object_lock is what init uses.
                try (TestRepository.password + "\n").write(toFile: dir + "/archive-password", atomically: true, encoding: .utf8)
                try """
                    [repositories.archive]
                    url = "s3://bunker-locked/from-config"
                    endpoint = "\(server.endpoint)"
                    password_file = "\(dir)/archive-password"
                    object_lock = { mode = "governance", days = 2 }
                    """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
                var named = e
                named["BUNKER_REPOSITORY"] = nil
                let fromConfig = try BunkerProcess.run(["init", "--config", dir + "/bunker.toml", "--repository", "archive", "--json"], environment: named)
                #expect(fromConfig.status == 0, "\(fromConfig.stderr)")
                let configured = (try json(fromConfig.stdout) as? [String: Any])?["object_lock"] as? [String: Any]
                #expect(configured?["mode"] as? String == "GOVERNANCE" && configured?["days"] as? Int == 2, "\(fromConfig.stdout)")
                let disagreeing = try BunkerProcess.run(
                    ["init", "--config", dir + "/bunker.toml", "--repository", "archive", "--object-lock", "compliance", "--lock-days", "3"], environment: named)
                #expect(disagreeing.status != 0 && disagreeing.stderr.contains("disagrees"), "\(disagreeing.stderr)")

                e["BUNKER_REPOSITORY"] = dir + "/local"
                let refused = try BunkerProcess.run(["init", "--object-lock", "compliance", "--lock-days", "3"], environment: e)
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("s3://"), "\(refused.stderr)")
                let unpaired = try BunkerProcess.run(["init", "--object-lock", "compliance"], environment: e)
                #expect(unpaired.status != 0)
            }
        }
    }
}
