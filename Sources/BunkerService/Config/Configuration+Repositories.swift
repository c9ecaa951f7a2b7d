import BunkerCore
import Foundation

/// One `[repositories.NAME]` table: a repository beside the primary one, which commands reach
/// with `--repository NAME` and copies with `--to NAME` or `[[schedule]] to = "NAME"`.
public struct NamedRepository: Sendable, Equatable {
    public var name: String
    public var settings: Configuration.RepositorySettings
    /// `[repositories.NAME.retention]`: its own policy (the DermAI cloud tier keeps weekly and
    /// monthly backups); nil keeps the primary's.
    public var retention: RetentionPolicy?
}

extension Configuration {
    /// Reads `[repositories.NAME]` tables; each needs `path` or `url`.
    mutating func readNamedRepositories(_ reader: inout TableReader) throws {
        guard var all = try reader.table("repositories") else { return }
        for name in all.table.keys.sorted() {
            guard var table = try all.table(name) else { continue }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw table.error(key: nil, "a repository name is letters, digits, - and _ only")
            }
            let settings = try Self.readRepository(&table)
            guard settings.location != nil else {
                throw table.error(key: nil, "give the repository's path (a directory) or url (s3://BUCKET/PREFIX)")
            }
            var retention: RetentionPolicy?
            if var policy = try table.table("retention") {
                retention = try Self.readRetention(&policy)
                try policy.rejectUnknown()
            }
            try table.rejectUnknown()
            repositories[name] = NamedRepository(name: name, settings: settings, retention: retention)
        }
    }

    /// The repository named `name` in `[repositories]`, or an error listing those there are.
    public func namedRepository(_ name: String) throws -> NamedRepository {
        guard let named = repositories[name] else {
            let known = repositories.keys.sorted()
            throw BunkerError(
                .invalidArgument,
                "No repository is named \(name) in \(file ?? "bunker.toml")"
                    + (known.isEmpty ? "; add a [repositories.\(name)] table with its path or url." : "; configured: \(known.joined(separator: ", ")).")
            )
        }
        return named
    }

    /// The name of the `[repositories]` table whose location is `location` (a trailing `/`
    /// aside), if one is: `--repo s3://…/offsite` then works as `--repository offsite`, with its
    /// password file and endpoint, as the recovery runbook writes it. The primary's own location
    /// is never taken for a named one.
    public func repositoryName(at location: String) -> String? {
        func normalized(_ text: String) -> String {
            var text = text
            while text.count > 1 && text.hasSuffix("/") { text.removeLast() }
            return text
        }
        let wanted = normalized(location)
        if repository.location.map(normalized) == wanted { return nil }
        let matching = repositories.values.filter { $0.settings.location.map(normalized) == wanted }
        return matching.count == 1 ? matching[0].name : nil
    }

    /// This configuration aimed at the repository `name` instead of the primary one: its
    /// location, password file and object-store settings, and its retention policy when it has
    /// one, so that every command (`stats`, `forget`, `cleanup`, `snapshots`, …) works on it as
    /// on the primary.
    public func selecting(repository name: String) throws -> Configuration {
        let named = try namedRepository(name)
        var selected = self
        selected.repository = named.settings
        if let retention = named.retention { selected.retention = retention }
        return selected
    }
}
