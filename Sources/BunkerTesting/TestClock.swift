import Foundation
import Synchronization

/// A clock that tests move by hand, to pass repositories through months and years in
/// milliseconds; pass ``now`` wherever Bunker takes a `now` function.
public final class TestClock: Sendable {
    private let current: Mutex<Date>

    public init(_ start: Date) {
        current = Mutex(start)
    }

    /// `2026-01-01 12:00` (UTC) as a date.
    public static func utc(_ text: String) -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: text)!
    }

    /// The current time of this clock.
    public var now: @Sendable () -> Date { { [self] in current.withLock { $0 } } }

    public func set(_ date: Date) { current.withLock { $0 = date } }

    public func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }
}
