import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// Every command reaches a `[repositories.NAME]` with `--repository NAME`, with that repository's
/// password file and retention; `bunker copy --to NAME` fills it.
@Suite(.serialized) struct NamedRepositoryCommandTests {
    @Test func initCopyStatsAndForgetWorkOnANamedRepository() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/tree", largeFileSize: 1 << 20)
            try "primary-password\n".write(toFile: dir + "/primary-password", atomically: true, encoding: .utf8)
            try "offsite-password\n".write(toFile: dir + "/offsite-password", atomically: true, encoding: .utf8)
            try """
                data_dir = "\(dir)/data"
                [repository]
                path = "\(dir)/repo"
                password_file = "\(dir)/primary-password"
                [repositories.offsite]
                path = "\(dir)/offsite"
                password_file = "\(dir)/offsite-password"
                [repositories.offsite.retention]
                keep_last = 1
                min_age_days = 0
                """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            let environment = ["BUNKER_CONFIG": dir + "/bunker.toml"]
            func run(_ arguments: [String]) throws -> BunkerProcess.Outcome {
                try BunkerProcess.run(arguments, environment: environment)
            }
            func json(_ outcome: BunkerProcess.Outcome) -> Any? {
                try? JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8))
            }

            #expect(try run(["init"]).status == 0)
            let offsiteInit = try run(["init", "--repository", "offsite", "--copy-params-from", dir + "/repo", "--from-password-file", dir + "/primary-password"])
            #expect(offsiteInit.status == 0, "\(offsiteInit.stderr)")
            #expect(FileManager.default.fileExists(atPath: dir + "/offsite/config"))
            for _ in 0..<2 { #expect(try run(["backup", dir + "/tree"]).status == 0) }

            let copy = try run(["copy", "--to", "offsite", "--json"])
            #expect(copy.status == 0, "\(copy.stderr)")
            #expect(((json(copy) as? [String: Any])?["copied"] as? [Any])?.count == 2, "\(copy.stdout)")

            let listed = try run(["snapshots", "--repository", "offsite", "--json"])
            #expect((json(listed) as? [Any])?.count == 2, "\(listed.stdout)\(listed.stderr)")
            let stats = try run(["stats", "--repository", "offsite", "--json"])
            #expect((json(stats) as? [String: Any])?["snapshots"] as? Int == 2, "\(stats.stdout)\(stats.stderr)")

            // Its own policy: keep_last = 1 there, the DermAI tiers (keeping both) on the primary.
            let offsiteForget = try run(["forget", "--repository", "offsite", "--dry-run", "--json"])
            let offsiteKeeps = ((json(offsiteForget) as? [String: Any])?["decisions"] as? [[String: Any]])?.filter { $0["keep"] as? Bool == true }
            #expect(offsiteKeeps?.count == 1, "\(offsiteForget.stdout)\(offsiteForget.stderr)")
            let primaryForget = try run(["forget", "--dry-run", "--json"])
            let primaryKeeps = ((json(primaryForget) as? [String: Any])?["decisions"] as? [[String: Any]])?.filter { $0["keep"] as? Bool == true }
            #expect(primaryKeeps?.count == 2, "\(primaryForget.stdout)")

            // Its location given with --repo (as the recovery runbook writes it) is the same
            // repository, with its own password file, not the primary's.
            for location in [dir + "/offsite", dir + "/offsite/"] {
                let byLocation = try run(["snapshots", "--repo", location, "--json"])
                #expect(byLocation.status == 0 && (json(byLocation) as? [Any])?.count == 2, "\(byLocation.stdout)\(byLocation.stderr)")
            }

            let unknown = try run(["stats", "--repository", "cloud"])
            #expect(unknown.status == 64 && unknown.stderr.contains("offsite"), "\(unknown.stderr)")
            let both = try run(["stats", "--repository", "offsite", "--repo", dir + "/repo"])
            #expect(both.status == 64, "\(both.stderr)")
        }
    }
}
