import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

@Suite struct NotifierSetupTests {
    /// A secret that cannot be read turns off its own notifier, says so in health, and leaves
    /// the other notifiers working.
    @Test func anUnreadableSecretDisablesOnlyItsOwnNotifier() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeService(in: dir, sources: """
                [smtp]
                host = "localhost"
                password_file = "\(dir)/no-such-password"

                [[webhook]]
                name = "unsigned"
                url = "http://127.0.0.1:9/a"
                secret_env = "BUNKER_TEST_UNSET_WEBHOOK_SECRET"

                [[webhook]]
                name = "ops"
                url = "http://127.0.0.1:9/b"
                """)
            let outbox = try #require(service.notificationOutbox())
            #expect(outbox.notifiers.map(\.channel) == ["webhook:ops"])
            #expect(service.notificationProblems == [
                "e-mail is off: the SMTP password file \(dir)/no-such-password cannot be read",
                "webhook unsigned is off: its secret variable BUNKER_TEST_UNSET_WEBHOOK_SECRET is not set",
            ])
            let health = await service.healthDetail()
            #expect(health.status == "degraded")
            #expect(health.problems.contains("webhook unsigned is off: its secret variable BUNKER_TEST_UNSET_WEBHOOK_SECRET is not set"))
        }
    }
}
