import Foundation

/// A span of calendar time such as `30d`, `1y6m` or `12h`: years (`y`), months (`m`), weeks
/// (`w`), days (`d`) and hours (`h`), as restic's `--keep-within` takes them.
///
/// It is subtracted from "now" on the UTC calendar, so `1m` on 31 March reaches back to the end
/// of February and `1y` is a calendar year whatever the leap days.
public struct RetentionDuration: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var years = 0
    public var months = 0
    public var days = 0
    public var hours = 0

    public init(years: Int = 0, months: Int = 0, days: Int = 0, hours: Int = 0) {
        self.years = years
        self.months = months
        self.days = days
        self.hours = hours
    }

    /// `n` days.
    public static func days(_ n: Int) -> RetentionDuration { RetentionDuration(days: n) }

    /// Parses `30d`, `2w`, `1y6m`, `12h`, `0`; a bare number is a number of days.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let invalid = BunkerError(.invalidArgument, "\"\(text)\" is not a duration; write a number with a unit: 30d (days), 2w (weeks), 6m (months), 1y (years), 12h (hours), or combine them: 1y6m; 0 for none. There is no unit below an hour.")
        guard !trimmed.isEmpty else { throw invalid }
        self.init()
        if let days = Int(trimmed), days >= 0 {
            self.days = days
            return
        }
        var number = ""
        var sawUnit = false
        for c in trimmed {
            if c.isASCII && c.isNumber {
                number.append(c)
                continue
            }
            guard let n = Int(number) else { throw invalid }
            switch c {
            case "y": years += n
            case "m": months += n
            case "w": days += 7 * n
            case "d": days += n
            case "h": hours += n
            default: throw invalid
            }
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit else { throw invalid }
    }

    /// The earliest moment within this span before `now`.
    public func cutoff(before now: Date) -> Date {
        var components = DateComponents()
        components.year = -years
        components.month = -months
        components.day = -days
        components.hour = -hours
        return RetentionCalendar.utc.date(byAdding: components, to: now) ?? now
    }

    /// The moment this span after `start` (the inverse of ``cutoff(before:)``).
    public func added(to start: Date) -> Date {
        var components = DateComponents()
        components.year = years
        components.month = months
        components.day = days
        components.hour = hours
        return RetentionCalendar.utc.date(byAdding: components, to: start) ?? start
    }

    public var isZero: Bool { years == 0 && months == 0 && days == 0 && hours == 0 }

    public var description: String {
        if isZero { return "0d" }
        var text = ""
        if years > 0 { text += "\(years)y" }
        if months > 0 { text += "\(months)m" }
        if days > 0 { text += "\(days)d" }
        if hours > 0 { text += "\(hours)h" }
        return text
    }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The calendars retention counts in: UTC, so that a policy keeps the same snapshots wherever
/// and whenever it runs (no daylight-saving days of 23 or 25 hours).
enum RetentionCalendar {
    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// ISO 8601 weeks (Monday first; week 1 holds the year's first Thursday).
    static let isoWeeks: Calendar = {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()
}
