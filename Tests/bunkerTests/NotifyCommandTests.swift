import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite(.serialized) struct NotifyCommandTests {
    @Test func notifyTestReachesTheMailServerAndAFailureWaitsInTheOutbox() async throws {
        try await withTemporaryDirectory { dir in
            let server = try SMTPTestServer.start(mode: .starttls, in: dir + "/smtp")
            func config(port: Int) throws {
                try """
                    data_dir = "\(dir)/data"

                    [repository]
                    path = "\(dir)/repo"

                    [smtp]
                    host = "localhost"
                    port = \(port)
                    user = "bunker"
                    from_email = "bunker@clinic.example"
                    timeout_seconds = 5
                    ca_file = "\(server.certificateFile)"

                    [notifications]
                    email_to = ["oncall@clinic.example"]
                    """.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
            }
            try config(port: server.port)
            _ = try await TestRepository.create(at: dir + "/repo")
            let e = ["BUNKER_CONFIG": dir + "/bunker.toml", "BUNKER_PASSWORD": TestRepository.password, "SMTP_PASSWORD": server.password]

            let sent = try BunkerProcess.run(["notify", "test", "--to", "it@clinic.example", "--json"], environment: e)
            #expect(sent.status == 0, "\(sent.stdout) \(sent.stderr)")
            let envelope = try #require(server.messages().first?.envelope)
            #expect(Set(envelope["to"] as? [String] ?? []) == ["oncall@clinic.example", "it@clinic.example"])
            server.stop()

            // The server is gone: the message waits, and the command says so.
            let failed = try BunkerProcess.run(["notify", "test"], environment: e)
            #expect(failed.status == 1)
            #expect(failed.stdout.contains("NOT delivered test by email (will retry)"), "\(failed.stdout)")
            let status = try BunkerProcess.run(["notify", "status", "--json"], environment: e)
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
            #expect(entries.map { $0["state"] as? String } == ["waiting"])
            #expect(entries.first?["attempts"] as? Int == 1)
        }
    }
}
