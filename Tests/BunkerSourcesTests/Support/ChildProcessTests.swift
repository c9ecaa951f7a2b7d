import BunkerCore
@testable import BunkerSources
import Foundation
import Testing

/// Helper programs (pg_dump, psql, sqlite3) are real programs here: `env`, `sh`, `sleep`.
@Suite struct ChildProcessTests {
    /// Bunker's environment holds its own secrets; a helper gets only what a client program
    /// reads, plus what the caller passes for this one call.
    @Test func helpersInheritNoSecretFromBunkersEnvironment() async throws {
        let bunkers = [
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/var/lib/bunker", "PGSSLMODE": "verify-full",
            "BUNKER_PASSWORD": "repository-secret", "SMTP_PASSWORD": "mail-secret", "BUNKER_WEBHOOK_SECRET": "hook-secret",
            "BUNKER_ADMIN_PASSWORD": "admin-secret", "AWS_SECRET_ACCESS_KEY": "s3-secret", "APP_DB_PASSWORD": "other-source-secret", "PGPASSWORD": "another-sources-secret",
        ]
        let output = try await ChildProcess.run("/usr/bin/env", [], environment: ["PGPASSWORD": "this-connection"],
                                                timeout: HelperTimeout(.seconds(30)), what: "env", inheriting: bunkers)
        var seen: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { seen[String(parts[0])] = String(parts[1]) }
        }
        #expect(seen == ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/var/lib/bunker", "PGSSLMODE": "verify-full",
                         "PGPASSWORD": "this-connection"])
        for secret in ["repository-secret", "mail-secret", "hook-secret", "admin-secret", "s3-secret", "other-source-secret", "another-sources-secret"] {
            #expect(!output.contains(secret))
        }
    }

    @Test(.timeLimit(.minutes(1))) func aHelperPastItsTimeoutIsKilledAndTheErrorNamesTheLimit() async throws {
        let started = ContinuousClock.now
        do {
            _ = try await ChildProcess.run("/bin/sleep", ["600"], timeout: HelperTimeout(.seconds(1), advice: "Raise `timeout` in bunker.toml."), what: "Sleeping")
            Issue.record("a helper outlived its timeout")
        } catch let error as BunkerError {
            #expect(error.code == .sourceIO)
            #expect(error.message == "Sleeping did not finish within 1s, so Bunker stopped it. Raise `timeout` in bunker.toml.")
        }
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    /// Helpers that wait (for a lock, a slow server) must not hold the threads that every other
    /// task of Bunker runs on: with as many waiting helpers as 8 times the cores, they all wait
    /// at once, and other work goes on meanwhile.
    @Test(.timeLimit(.minutes(2))) func waitingHelpersHoldNoThreadOfTheCooperativePool() async throws {
        let helpers = 8 * ProcessInfo.processInfo.activeProcessorCount
        let started = ContinuousClock.now
        let (outputs, pinged) = try await withThrowingTaskGroup(of: (String?, Duration?).self) { group in
            for i in 0..<helpers {
                group.addTask {
                    let output = try await ChildProcess.run("/bin/sh", ["-c", "sleep 2; echo \(i)"], timeout: HelperTimeout(.seconds(60)), what: "helper \(i)")
                    return (output, nil)
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(200))
                return (nil, ContinuousClock.now - started)
            }
            var outputs: [String] = []
            var pinged: Duration?
            for try await (output, ping) in group {
                if let output { outputs.append(output) }
                if let ping { pinged = ping }
            }
            return (outputs, pinged)
        }
        #expect(Set(outputs) == Set((0..<helpers).map { "\($0)\n" }))
        // One after another on a blocked pool, they would take 2 s per core's worth: 16 s.
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(try #require(pinged) < .seconds(1.5), "other work ran while the helpers waited")
    }
}
