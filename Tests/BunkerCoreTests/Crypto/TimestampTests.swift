import BunkerCore
import Foundation
import Testing

/// RFC 3339 timestamps as Bunker stores them (snapshots, key files, the audit trail) and as users
/// and S3 servers write them.
@Suite struct TimestampTests {
    @Test func whatIsFormattedParsesBackToTheNanosecond() throws {
        for seconds in [0.0, 1_733_270_400.123456789, 1_000_000_000.000000001, 4_102_444_799.999999] {
            let date = Date(timeIntervalSince1970: seconds)
            let text = Timestamp.format(date)
            let parsed = try #require(Timestamp.parse(text), "\(text)")
            #expect(Timestamp.format(parsed) == text)
            #expect(abs(parsed.timeIntervalSince1970 - seconds) < 1e-6)
        }
    }

    @Test func readsFractionsOffsetsAndLowerCaseLetters() throws {
        let base = 1_733_270_400.0 // 2024-12-04T00:00:00Z
        let cases: [(String, Double)] = [
            ("2024-12-04T00:00:00Z", base),
            ("2024-12-04t00:00:00z", base),
            ("2024-12-04T00:00:00.5Z", base + 0.5),
            ("2024-12-04T00:00:00.000000001Z", base + 1e-9),
            ("2024-12-04T00:00:00.1234567891234Z", base + 0.123456789),
            ("2024-12-04T01:30:00+01:30", base),
            ("2024-12-03T22:00:00-02:00", base),
            ("2024-02-29T12:00:00Z", 1_709_208_000),
            ("1969-12-31T23:59:59Z", -1),
        ]
        for (text, expected) in cases {
            let parsed = try #require(Timestamp.parse(text), "\(text)")
            #expect(abs(parsed.timeIntervalSince1970 - expected) < 1e-7, "\(text)")
        }
    }

    @Test func refusesWhatIsNotAnRFC3339DateTime() {
        for text in ["", "2024-12-04", "2024-12-04T00:00:00", "2024-12-04 00:00:00Z", "2024-13-01T00:00:00Z",
                     "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-12-04T24:00:00Z", "2024-12-04T00:60:00Z",
                     "2024-12-04T00:00:00.Z", "2024-12-04T00:00:00+0100", "2024-12-04T00:00:00Z ", "24-12-04T00:00:00Z",
                     "2024-1-04T00:00:00Z", "2024-12-04T00:00:00+24:00", "yesterday"] {
            #expect(Timestamp.parse(text) == nil, "\(text)")
        }
    }
}
