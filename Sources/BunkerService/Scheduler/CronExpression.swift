import BunkerCore
import Foundation

/// A cron schedule in the classic five fields: minute, hour, day of month, month, day of week.
///
/// Each field takes `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, and lists of these
/// separated by commas; months and days of the week also take names (`jan`, `mon`), and Sunday is
/// 0 or 7. As in Vixie cron, when both day fields are restricted a day matches if either does.
/// The macros `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` (`@annually`) are accepted.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    static let macros = [
        "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
    ]
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `text`; the error says which field is wrong and why.
    public init(_ text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        description = trimmed
        let expanded = Self.macros[trimmed.lowercased()] ?? trimmed
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { String($0).lowercased() }
        guard fields.count == 5 else {
            throw BunkerError(.invalidArgument, "The cron expression \"\(text)\" has \(fields.count) fields; it needs 5: minute hour day-of-month month day-of-week (e.g. \"0 23 * * *\"), or a macro like @daily.")
        }
        minutes = try Self.field(fields[0], "minute", 0...59, names: [], in: text)
        hours = try Self.field(fields[1], "hour", 0...23, names: [], in: text)
        days = try Self.field(fields[2], "day of month", 1...31, names: [], in: text)
        months = try Self.field(fields[3], "month", 1...12, names: Self.monthNames, in: text)
        let weekdays = try Self.field(fields[4], "day of week", 0...7, names: Self.weekdayNames, in: text)
        self.weekdays = Set(weekdays.map { $0 % 7 })
        daysRestricted = !fields[2].hasPrefix("*")
        weekdaysRestricted = !fields[4].hasPrefix("*")
    }

    private static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String], in whole: String) throws -> Set<Int> {
        func fail(_ why: String) -> BunkerError {
            BunkerError(.invalidArgument, "The cron expression \"\(whole)\" has a wrong \(name) field \"\(text)\": \(why).")
        }
        func value(_ token: Substring) throws -> Int {
            if let number = Int(token) {
                guard range.contains(number) else { throw fail("\(number) is outside \(range.lowerBound)–\(range.upperBound)") }
                return number
            }
            if let index = names.firstIndex(of: String(token)) {
                // Month names count from 1, day names from 0 (Sunday).
                return names.count == 12 ? index + 1 : index
            }
            throw fail("\"\(token)\" is not a number\(names.isEmpty ? "" : " or a name like \(names[0])")")
        }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2, !pieces[0].isEmpty else { throw fail("\"\(part)\" is not a value, a range or a step") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s > 0 else { throw fail("the step \"\(pieces[1])\" must be a positive number") }
                step = s
            }
            let lower: Int
            let upper: Int
            if pieces[0] == "*" {
                (lower, upper) = (range.lowerBound, range.upperBound)
            } else if let dash = pieces[0].firstIndex(of: "-") {
                lower = try value(pieces[0][..<dash])
                upper = try value(pieces[0][pieces[0].index(after: dash)...])
                guard lower <= upper else { throw fail("the range \(pieces[0]) runs backwards") }
            } else {
                lower = try value(pieces[0])
                // "5/15" means from 5 to the end in steps of 15, as in Vixie cron.
                upper = pieces.count == 2 ? range.upperBound : lower
            }
            result.formUnion(stride(from: lower, through: upper, by: step))
        }
        return result
    }

    /// Whether a day (in the calendar's time zone) matches the day-of-month, month and day-of-week fields.
    func matchesDay(day: Int, month: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        let byDay = days.contains(day)
        let byWeekday = weekdays.contains(weekday)
        if daysRestricted && weekdaysRestricted { return byDay || byWeekday }
        return byDay && byWeekday
    }

    /// The first time strictly after `date` that the schedule fires, in `timeZone`; nil if it
    /// never fires within eight years (a 31st of February).
    public func nextFire(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        // Start at the next whole minute.
        let start = calendar.dateInterval(of: .minute, for: date)!.end
        var day = calendar.startOfDay(for: start)
        let limit = calendar.date(byAdding: .year, value: 8, to: start)!
        while day < limit {
            let parts = calendar.dateComponents([.day, .month, .weekday], from: day)
            if matchesDay(day: parts.day!, month: parts.month!, weekday: parts.weekday! - 1) {
                // Candidate times of this day, in order. A time skipped by a daylight-saving
                // change runs right after the jump (as cron does), so a 02:00 backup is not
                // lost once a year.
                for hour in hours.sorted() {
                    for minute in minutes.sorted() {
                        var wanted = calendar.dateComponents([.year, .month, .day], from: day)
                        wanted.hour = hour
                        wanted.minute = minute
                        guard let candidate = calendar.date(from: wanted), candidate >= start else { continue }
                        return candidate
                    }
                }
            }
            day = calendar.date(byAdding: .day, value: 1, to: day)!
        }
        return nil
    }
}
