import BunkerCore
import Foundation

/// How a postgres source's WAL is archived: the `[source.wal]` table under its `[[source]]`.
///
/// ```toml
/// [[source]]
/// name = "clinic"
/// kind = "postgres"
/// …
/// [source.wal]
/// async = true                        # wal push spools and returns; a drainer ships
/// spool_dir = "/var/lib/bunker/spool" # on the server's disk; PostgreSQL's user writes it
/// spool_max = 256                     # files at most in the spool
/// stream = true                       # bunker serve (or bunker wal stream) streams WAL
/// stream_interval = 5                 # seconds between uploads of the segment being written
/// stream_dir = "/var/lib/bunker/wal-stream"   # where pg_receivewal writes (default: data_dir/wal-stream)
/// ```
public struct WalArchiving: Sendable, Equatable {
    /// Whether `wal push` copies the file into the local spool and returns, leaving the shipping
    /// to a background drainer.
    public var async = false
    /// The spool's directory (a subdirectory per source is made in it).
    public var spoolDirectory: String?
    /// The most files the spool holds; past it, `wal push` archives synchronously.
    public var spoolMax = 256
    /// `pitr_days`: how far back a point-in-time restore must reach. Archived WAL older than
    /// the newest base backup that ended before this many days ago is removed by cleanup and
    /// prune, even while older base backups are kept (each still restores to its own end, since
    /// it holds the WAL it needs). nil: WAL is kept back to the oldest kept base backup.
    public var pitrDays: Int?
    /// Whether `bunker serve` streams the source's WAL (`pg_receivewal`) and stores the segment
    /// being written every ``streamInterval`` seconds, for a recovery point seconds old rather
    /// than a segment (or `archive_timeout`) old.
    public var stream = false
    /// Seconds between two uploads of the segment being written.
    public var streamInterval = 5
    /// Where `pg_receivewal` writes; nil: `wal-stream/SOURCE` in the data directory.
    public var streamDirectory: String?

    public init() {}

    /// Reads `[source.wal]`, if the table has one.
    init(reading settings: inout some SourceSettingsReader, source: String) throws {
        guard var table = try settings.table("wal") else { return }
        async = try table.bool("async") ?? false
        spoolDirectory = try table.path("spool_dir")
        spoolMax = try table.int("spool_max", range: 1...1_000_000) ?? 256
        pitrDays = try table.int("pitr_days", range: 1...36500)
        stream = try table.bool("stream") ?? false
        streamInterval = try table.int("stream_interval", range: 1...3600) ?? 5
        streamDirectory = try table.path("stream_dir")
        try table.rejectUnknown()
        if async && spoolDirectory == nil {
            throw table.error(key: "spool_dir", "async = true needs spool_dir, a local directory that PostgreSQL's user can write")
        }
    }
}
