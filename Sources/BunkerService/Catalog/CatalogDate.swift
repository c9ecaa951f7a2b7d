import BunkerCore
import Foundation
import GRDB

/// Dates as the catalog stores them: text in GRDB's own form, `yyyy-MM-dd HH:mm:ss.SSS` in UTC,
/// to the nearest millisecond, which every catalog written so far holds and which SQL orders and
/// compares as text. The milliseconds are counted as GRDB's formatter counts them (from the
/// reference date, then half a millisecond added and rounded down), so that the same date gives
/// the same text either way.
///
/// Written here rather than left to GRDB, whose encoder formats with a `DateFormatter`: that
/// loads ICU's locale and time-zone data, about 5 MiB of resident memory in every command that
/// records a job (a first backup's peak among them), for a fixed numeric format. Records use
/// ``encoding``; SQL that binds a date binds ``text(_:)``. Reading is left to GRDB, which parses
/// the text without a formatter.
enum CatalogDate {
    static func text(_ date: Date) -> String {
        let since1970 = date.timeIntervalSinceReferenceDate + Date.timeIntervalBetween1970AndReferenceDate
        // Rounded as Foundation's formatter rounds before ICU floors: half a millisecond added,
        // then down. `rounded()` took a tie before 1970 away from zero, one millisecond early.
        var (seconds, milliseconds) = Int64((since1970 * 1000 + 0.5).rounded(.down)).quotientAndRemainder(dividingBy: 1000)
        if milliseconds < 0 {
            seconds -= 1
            milliseconds += 1000
        }
        return Timestamp.utc(seconds, separator: " ") + String(format: ".%03d", Int(milliseconds))
    }

    static let encoding = DatabaseDateEncodingStrategy.custom { text($0) }
}
