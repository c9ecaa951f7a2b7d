import Foundation

/// How much unused data prune may leave in packs that still hold used data.
public enum UnusedLimit: Sendable, Equatable, CustomStringConvertible {
    /// Unused bytes may be at most this share (0–99.x %) of the packs' bytes after prune.
    case percent(Double)
    /// At most this many unused bytes.
    case bytes(UInt64)
    /// Never repack for unused space; only wholly unused packs are deleted.
    case unlimited

    /// Parses `5%`, `200M`, `1G`, `unlimited`.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "unlimited" {
            self = .unlimited
        } else if t.hasSuffix("%"), let p = Double(t.dropLast()), p >= 0, p < 100 {
            self = .percent(p)
        } else if let bytes = parseByteSize(t) {
            self = .bytes(bytes)
        } else {
            throw BunkerError(.invalidArgument, "\"\(text)\" is not an unused-space limit; write a percentage below 100 (5%), a size (500M, 2G) or `unlimited`.")
        }
    }

    /// The unused bytes tolerated beside `used` bytes of used data.
    func tolerated(used: UInt64) -> UInt64 {
        switch self {
        case .percent(let p): return UInt64(Double(used) * p / (100 - p))
        case .bytes(let b): return b
        case .unlimited: return .max
        }
    }

    public var description: String {
        switch self {
        case .percent(let p): return p == p.rounded() ? "\(Int(p))%" : "\(p)%"
        case .bytes(let b): return "\(b) bytes"
        case .unlimited: return "unlimited"
        }
    }
}

/// Parses `123`, `10K`, `500M`, `2G`, `1T` (powers of 1024; an optional trailing `B` or `iB`).
public func parseByteSize(_ text: String) -> UInt64? {
    var t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if t.hasSuffix("ib") { t.removeLast(2) } else if t.hasSuffix("b") { t.removeLast() }
    let units: [Character: UInt64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40]
    var multiplier: UInt64 = 1
    if let last = t.last, let unit = units[last] {
        multiplier = unit
        t.removeLast()
    }
    guard let value = Double(t), value >= 0 else { return nil }
    return UInt64(value * Double(multiplier))
}

/// Prune's settings, like restic's.
public struct PruneOptions: Sendable {
    /// Unused data tolerated in packs that also hold used data; above it, the emptiest such
    /// packs are repacked.
    public var maxUnused: UnusedLimit = .percent(5)
    /// At most this many bytes of packs are read and rewritten in one run (nil: no limit).
    public var maxRepackBytes: UInt64?
    /// A pack that no index names is deleted only once it is older than this: a writer whose lock
    /// was wrongly taken for stale may still be about to index it. At least
    /// ``minimumUnindexedGrace`` unless ``allowShortGrace``.
    public var unindexedGrace: TimeInterval = 3600
    /// Accept an ``unindexedGrace`` below ``minimumUnindexedGrace`` (`--unsafe-short-grace`): only
    /// safe when no other process can be writing to the repository.
    public var allowShortGrace = false
    /// Prune even when no snapshot is left while the index still names packs (`--allow-empty`).
    /// Without it such a prune refuses: a listing that lost the snapshots would make it delete
    /// every pack.
    public var allowEmpty = false
    /// Decide and report, change nothing.
    public var dryRun = false
    /// Snapshots to count as already forgotten: a cleanup's dry run plans the prune that would
    /// follow its forget.
    public var forgotten: Set<ID> = []

    /// The shortest ``unindexedGrace`` accepted without ``allowShortGrace``: twice the time after
    /// which a lock is taken for stale, so that a writer whose lock was wrongly judged stale has
    /// long indexed its packs (or died) before they count as leftovers.
    public static let minimumUnindexedGrace: TimeInterval = max(3600, 2 * LockInfo.staleAfter)

    public init() {}

    /// Refuses settings that could delete data a live writer still needs.
    public func validate() throws {
        guard unindexedGrace >= PruneOptions.minimumUnindexedGrace || allowShortGrace else {
            throw BunkerError(.invalidArgument, "An unindexed grace of \(Int(unindexedGrace)) s is shorter than the minimum of \(Int(PruneOptions.minimumUnindexedGrace / 60)) minutes: prune could delete the packs of a backup that is still running. Give a longer --unindexed-grace, or add --unsafe-short-grace if no other process can be using the repository.")
        }
    }
}
