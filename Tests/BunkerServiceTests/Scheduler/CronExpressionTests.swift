import BunkerCore
import BunkerService
import Foundation
import Testing

/// Parses an ISO 8601 UTC time, e.g. "2026-12-02T10:00:00Z".
func utc(_ text: String) -> Date {
    ISO8601DateFormatter().date(from: text)!
}

@Suite struct CronExpressionTests {
    @Test(arguments: [
        ("0 23 * * *", "2026-03-01T10:00:00Z", "2026-03-01T23:00:00Z"),
        ("0 23 * * *", "2026-03-01T23:00:00Z", "2026-03-02T23:00:00Z"),
        ("*/15 * * * *", "2026-03-01T10:07:30Z", "2026-03-01T10:15:00Z"),
        ("0 3 * * 0", "2026-12-02T12:00:00Z", "2026-12-06T03:00:00Z"),
        ("0 3 * * sun", "2026-12-06T03:00:00Z", "2026-12-13T03:00:00Z"),
        ("0 3 * * 7", "2026-12-02T12:00:00Z", "2026-12-06T03:00:00Z"),
        ("0 6 1 * *", "2026-01-31T07:00:00Z", "2026-02-01T06:00:00Z"),
        ("30 4 1,15 * 5", "2026-12-02T00:00:00Z", "2026-12-04T04:30:00Z"),
        ("30 4 1,15 * 5", "2026-12-12T00:00:00Z", "2026-12-15T04:30:00Z"),
        ("0 0 29 2 *", "2027-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("@monthly", "2026-12-15T08:00:00Z", "2027-01-01T00:00:00Z"),
        ("@daily", "2026-12-15T08:00:00Z", "2026-12-16T00:00:00Z"),
        ("0 12 * jan-mar mon-fri", "2026-03-31T13:00:00Z", "2027-01-01T12:00:00Z"),
        ("5/20 8-10 * * *", "2026-05-05T08:46:00Z", "2026-05-05T09:05:00Z"),
    ])
    func nextFireTimeInUTC(expression: String, after: String, expected: String) throws {
        let cron = try CronExpression(expression)
        #expect(cron.nextFire(after: utc(after), in: TimeZone(identifier: "UTC")!) == utc(expected))
    }

    @Test func aTimeSkippedByDaylightSavingRunsRightAfterTheJump() throws {
        // 2026-03-29 02:30 does not exist in Berlin (clocks jump from 02:00 to 03:00): the run
        // comes at 03:30 CEST (01:30 UTC) that day, not a day later.
        let cron = try CronExpression("30 2 * * *")
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        #expect(cron.nextFire(after: utc("2026-03-28T12:00:00Z"), in: berlin) == utc("2026-03-29T01:30:00Z"))
        #expect(cron.nextFire(after: utc("2026-03-29T01:30:00Z"), in: berlin) == utc("2026-03-30T00:30:00Z"), "and once only")
    }

    @Test func anImpossibleDateNeverFires() throws {
        #expect(try CronExpression("0 0 31 2 *").nextFire(after: utc("2026-01-01T00:00:00Z"), in: TimeZone(identifier: "UTC")!) == nil)
    }

    @Test(arguments: [
        ("61 * * * *", "minute field \"61\": 61 is outside 0–59"),
        ("* * *", "has 3 fields; it needs 5"),
        ("*/0 * * * *", "the step \"0\" must be a positive number"),
        ("5-1 * * * *", "the range 5-1 runs backwards"),
        ("0 0 * * funday", "\"funday\" is not a number or a name like sun"),
        ("0 0 * 13 *", "month field \"13\": 13 is outside 1–12"),
    ])
    func wrongExpressionsSayWhatIsWrong(expression: String, message: String) {
        #expect {
            _ = try CronExpression(expression)
        } throws: { error in
            (error as? BunkerError)?.message.contains(message) == true
        }
    }
}
