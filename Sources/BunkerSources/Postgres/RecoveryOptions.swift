import BunkerCore
import Foundation

/// Where point-in-time recovery of a physical base backup stops.
public enum RecoveryTarget: Sendable, Equatable {
    /// Replay every archived WAL segment (`--latest`).
    case latest
    /// Stop before the first transaction that committed after this moment (`recovery_target_time`).
    case time(Date)
    /// Stop after this transaction id (`recovery_target_xid`).
    case xid(String)
    /// Stop at this WAL location (`recovery_target_lsn`).
    case lsn(String)
    /// Stop at this restore point, made with `pg_create_restore_point` (`recovery_target_name`).
    case name(String)

    /// The `recovery_target_*` setting, if any: name and value.
    var setting: (String, String)? {
        switch self {
        case .latest: nil
        case .time(let date): ("recovery_target_time", Self.postgresTime(date))
        case .xid(let xid): ("recovery_target_xid", xid)
        case .lsn(let lsn): ("recovery_target_lsn", lsn)
        case .name(let name): ("recovery_target_name", name)
        }
    }

    /// How users and reports name the target.
    public var description: String {
        guard let (name, value) = setting else { return "latest (all archived WAL)" }
        return "\(name) = \(value)"
    }

    /// A moment as PostgreSQL reads a timestamptz: `2026-12-03 14:00:00.123456+00`.
    public static func postgresTime(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let micros = Int(((date.timeIntervalSince1970 - seconds) * 1e6).rounded())
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(micros, 999_999))
    }

    /// Reads a moment as users write it: `2026-12-03 14:00:00+00`, `2026-12-03T14:00:00Z`, with
    /// or without fractions of a second, with an offset (`+01`, `+01:00`, `Z`); a moment without
    /// an offset is refused rather than guessed.
    public static func parseTime(_ text: String) -> Date? {
        var s = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: " ", with: "T")
        if s.hasSuffix("UTC") { s = String(s.dropLast(3)) + "Z" }
        s = s.replacingOccurrences(of: "TZ", with: "Z").replacingOccurrences(of: "T+", with: "+").replacingOccurrences(of: "T-", with: "-")
        // A bare hour offset (+00, -05) as ISO 8601 wants it (+00:00).
        if let range = s.range(of: #"[+-]\d{2}$"#, options: .regularExpression) {
            s = s.replacingCharacters(in: range, with: s[range] + ":00")
        }
        if let range = s.range(of: #"[+-]\d{4}$"#, options: .regularExpression) {
            let offset = s[range]
            s = s.replacingCharacters(in: range, with: offset.prefix(3) + ":" + offset.suffix(2))
        }
        guard s.range(of: #"(Z|[+-]\d{2}:\d{2})$"#, options: .regularExpression) != nil else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        var fraction = 0.0
        if let dot = s.range(of: #"\.\d+"#, options: .regularExpression) {
            fraction = Double("0" + s[dot]) ?? 0
            s.removeSubrange(dot)
        }
        return formatter.date(from: s).map { $0.addingTimeInterval(fraction) }
    }
}

/// How a physical base backup is restored: the recovery it is set up for, how it fetches
/// archived WAL, and whether Bunker starts it.
public struct RecoveryOptions: Sendable {
    public var target: RecoveryTarget = .latest
    /// The command that fetches one archived WAL file, without its `%f %p`: the full path of
    /// `bunker` and the absolute path of its configuration, since PostgreSQL runs it as its own
    /// user, in its own environment (`/usr/bin/bunker wal fetch --config /etc/bunker/bunker.toml
    /// --source clinic`).
    public var walFetch: [String] = []
    /// Start the server once restored, wait for recovery to end, and check the target.
    public var start = false
    /// The port a started server listens on; nil picks a free one.
    public var port: Int?
    /// The system user the data directory is given to and the server runs as, when Bunker runs
    /// as root; nil: the owner of the data directory's parent, else `postgres`.
    public var osUser: String?
    /// Whether the restored server keeps archiving its WAL into the source's archive, as the
    /// live server did: a server that replaces a lost or damaged one must, so that its new
    /// timeline can be restored in turn. A copy to look at must not (`--no-archive`: its
    /// `archive_mode` is set to off): once promoted it would archive a timeline of its own into
    /// the source, which a later restore with `recovery_target_timeline = 'latest'` follows.
    public var archiving = true

    public init(target: RecoveryTarget = .latest) {
        self.target = target
    }

    /// `restore_command` as the server runs it (through `sh -c`): every word quoted for the
    /// shell, then `%f %p`.
    public var restoreCommand: String {
        (walFetch.map(Self.shellQuoted) + ["%f", "%p"]).joined(separator: " ")
    }

    /// A word as the shell reads it back unchanged; `%` doubled, since PostgreSQL replaces
    /// `%f`, `%p` and `%%` in the command.
    static func shellQuoted(_ word: String) -> String {
        let escaped = word.replacingOccurrences(of: "%", with: "%%")
        let plain = escaped.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/._-=:,+@%".contains($0)) }
        if plain && !escaped.isEmpty { return escaped }
        return "'" + escaped.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// A string value as postgresql.conf reads it back unchanged.
    static func configQuoted(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''") + "'"
    }
}
