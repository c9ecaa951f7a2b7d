import Foundation

/// Exclude patterns, as restic and rsync users know them.
///
/// - A pattern without a slash (`*.tmp`) matches a file or directory name anywhere.
/// - A pattern ending in a slash (`cache/`) matches directories only.
/// - A pattern containing a slash elsewhere (`studies/tmp/*`, `/data/x`) matches the whole path:
///   absolute, or relative to the backed-up directory.
/// `*`, `?` and `[…]` are shell wildcards (`fnmatch`), `*` does not cross a slash.
public struct ExcludeRules: Sendable {
    private struct Rule: Sendable {
        var pattern: String
        var directoryOnly: Bool
        var matchesPath: Bool
    }

    private let rules: [Rule]

    public init(_ patterns: [String]) throws {
        rules = try patterns.map { raw in
            var pattern = raw.trimmingCharacters(in: .whitespaces)
            guard !pattern.isEmpty else { throw BunkerError(.invalidArgument, "An empty exclude pattern matches nothing; remove it.") }
            var directoryOnly = false
            if pattern.hasSuffix("/") && pattern.count > 1 {
                directoryOnly = true
                pattern.removeLast()
            }
            return Rule(pattern: pattern, directoryOnly: directoryOnly, matchesPath: pattern.contains("/"))
        }
    }

    public var isEmpty: Bool { rules.isEmpty }

    /// Whether an entry is excluded; `relative` is its path below the backed-up directory.
    public func excludes(name: String, absolute: String, relative: String, isDirectory: Bool) -> Bool {
        for rule in rules {
            if rule.directoryOnly && !isDirectory { continue }
            if rule.matchesPath {
                let p = rule.pattern.hasPrefix("/") ? absolute : relative
                if fnmatch(rule.pattern, p, FNM_PATHNAME) == 0 { return true }
            } else if fnmatch(rule.pattern, name, 0) == 0 {
                return true
            }
        }
        return false
    }
}
