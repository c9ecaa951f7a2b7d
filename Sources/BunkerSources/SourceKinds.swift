import BunkerCore

/// Every source kind this version of Bunker knows, and the one place that makes sources.
///
/// To add a kind, add one file in `Sources/BunkerSources/<Kind>/` with a type conforming to
/// ``Source`` and ``SourceKindDefinition`` (its `[[source]]` table is read there, and nowhere
/// else), and list the type in ``all``. Nothing outside the kind's file switches on the kind.
public enum SourceKinds {
    /// The known kinds, in the order error messages list them.
    public static let all: [any SourceKindDefinition.Type] = [FilesSource.self, SQLiteSource.self, PostgresSource.self]

    /// The definition of `kind`, if this version knows it.
    public static func definition(of kind: SourceKind) -> (any SourceKindDefinition.Type)? {
        all.first { $0.kind == kind }
    }

    /// The known kinds' names as a sentence lists them: "files, sqlite or postgres".
    public static var names: String {
        let names = all.map { $0.kind.rawValue }
        guard names.count > 1 else { return names.joined() }
        return names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1]
    }

    /// The source a `[[source]]` table describes: `kind` picks the definition, which reads the
    /// rest of the table. An unknown kind is an error on the `kind` key listing the known ones.
    public static func makeSource(name: String, kind: String, settings: inout some SourceSettingsReader) throws -> any Source {
        guard let definition = definition(of: SourceKind(rawValue: kind)) else {
            throw settings.error(key: "kind", "kind must be \(names), not \"\(kind)\"")
        }
        return try definition.makeSource(name: name, settings: &settings)
    }

    /// A source that restores a snapshot's record of a source that is not configured here.
    public static func makeSource(restoring record: SnapshotSource) throws -> any Source {
        guard let definition = definition(of: SourceKind(rawValue: record.kind)) else {
            throw BunkerError(.unsupportedFormat, "Source \(record.name) is of kind \(record.kind), which this version of Bunker cannot restore; upgrade Bunker.")
        }
        return try definition.makeSource(restoring: record)
    }
}

/// What Bunker knows of one kind of source: its name, and how its sources are made from a
/// `[[source]]` table and from a snapshot's record. Conformed to by the kind's source type and
/// listed in ``SourceKinds/all``.
public protocol SourceKindDefinition: Sendable {
    /// The kind's name: `kind = "…"` in bunker.toml, and the kind its snapshots record.
    static var kind: SourceKind { get }

    /// Whether the kind holds a database (`--type database`) rather than a file tree
    /// (`--type files`); a restore puts databases back first, since they can refuse.
    static var holdsDatabase: Bool { get }

    /// A source from its `[[source]]` table, whose `name` and `kind` are read already. Reads
    /// every key the kind understands; the caller then refuses any other key.
    static func makeSource(name: String, settings: inout some SourceSettingsReader) throws -> any Source

    /// A source for a snapshot's record of a source that is not configured here, made from what
    /// the record holds: enough to restore somewhere other than the live place. Whatever it
    /// cannot know (a database server) it must not guess: operations that need it fail saying
    /// what to configure.
    static func makeSource(restoring record: SnapshotSource) throws -> any Source
}

/// A `[[source]]` table as a source kind reads it. The service layer implements it over its TOML
/// file, so that no source kind depends on a TOML library; every error it makes names the file,
/// the line and the table.
public protocol SourceSettingsReader {
    /// The environment the configuration is read with (defaults such as `USER` come from it).
    var environment: [String: String] { get }

    /// Whether the table has `key` at all.
    func has(_ key: String) -> Bool

    /// A string; nil when absent; an error when the value is not a string.
    mutating func string(_ key: String) throws -> String?

    /// true or false; nil when absent.
    mutating func bool(_ key: String) throws -> Bool?

    /// A table inside this one (`[source.wal]` after a `[[source]]` table); nil when absent.
    /// The caller reads its keys and then calls ``rejectUnknown()`` on it.
    mutating func table(_ key: String) throws -> Self?

    /// Refuses every key of the table that was not read.
    func rejectUnknown() throws

    /// A list of strings; nil when absent.
    mutating func strings(_ key: String) throws -> [String]?

    /// A whole number within `range`; nil when absent.
    mutating func int(_ key: String, range: ClosedRange<Int>) throws -> Int?

    /// A span of time such as "2h", "30m", "90s" or "1h30m", more than zero; nil when absent.
    mutating func duration(_ key: String) throws -> Duration?

    /// A path, `~` expanded and made absolute against the configuration file's directory; nil
    /// when absent.
    mutating func path(_ key: String) throws -> String?

    /// What `read` returns; an error saying the key it asked for is required when that is nil.
    mutating func required<T>(_ read: (inout Self) throws -> T?) throws -> T

    /// An error about `key` (nil: the table itself) naming the file, line and table.
    func error(key: String?, _ message: String) -> BunkerError
}
