import BunkerCore
import BunkerSources
import Foundation
import Synchronization

/// The backup types of the Clinical Dashboard API: which sources a backup (or a restore) takes.
public enum BackupType: String, Sendable, Codable, CaseIterable {
    case full, database, files

    func includes(_ kind: SourceKind) -> Bool {
        switch self {
        case .full: return true
        case .database: return kind.isDatabase
        case .files: return !kind.isDatabase
        }
    }
}

/// The operations both faces of Bunker (the CLI, later the HTTP server) run: backups of the
/// configured sources, safe restores, restore drills, exports and verifies.
///
/// Every operation is audited here, not by its caller: it takes the ``AuditActor`` who asked, writes
/// a start row before touching anything and an end row (with the catalog change it made, such
/// as a new backup's metadata) when it ends, so that the CLI and the server audit alike.
public final class BunkerService: Sendable {
    public let configuration: Configuration
    public let repository: Repository
    public let sources: [any Source]
    private let openedCatalog: Mutex<Catalog?>
    /// When queued notifications are sent.
    public let delivery: NotificationDelivery
    let outboxState = Mutex(OutboxState())
    /// Runs every long operation a face starts: one writer at a time (in this process and, by
    /// the data directory's `writer.lock`, against the others), progress, background jobs.
    public let jobs: JobRunner
    /// Folders the snapshot browser opened lately, sorted.
    let sortedFolders = SortedFolderCache()

    struct OutboxState {
        /// The outbox once made; `.some(nil)` when nothing is configured to notify.
        var made: NotificationOutbox??
        /// Why a configured notifier could not be made.
        var problems: [String] = []
    }

    /// A service over `repository`; the catalog is opened on first use unless one is given.
    public init(configuration: Configuration, repository: Repository, catalog: Catalog? = nil, delivery: NotificationDelivery = .inline) {
        self.delivery = delivery
        self.configuration = configuration
        self.repository = repository
        self.sources = configuration.sources
        self.openedCatalog = Mutex(catalog)
        self.jobs = JobRunner(claimFile: configuration.dataDirectory + "/writer.lock")
        jobs.watch { [weak self] jobID, counters in
            // A catalog that cannot be written now only delays the counters and a cancel.
            (try? self?.catalog().publish(counters, of: jobID)) ?? false
        }
    }

    /// The catalog in the configured data directory, opened (and created) on first use.
    public func catalog() throws -> Catalog {
        try openedCatalog.withLock { opened in
            if let opened { return opened }
            let catalog = try configuration.openCatalog()
            opened = catalog
            return catalog
        }
    }

    /// The configured sources of `type`, or the named ones.
    func selectSources(type: BackupType, names: [String]) throws -> [any Source] {
        guard !sources.isEmpty else {
            throw BunkerError(.invalidArgument, "No sources are configured: add [[source]] tables to bunker.toml (see docs/configuration.md), or name paths to back up.")
        }
        for name in names where !sources.contains(where: { $0.name == name }) {
            throw BunkerError(.invalidArgument, "No source is named \(name); configured: \(sources.map(\.name).joined(separator: ", ")).")
        }
        let selected = sources.filter { (names.isEmpty || names.contains($0.name)) && type.includes($0.kind) }
        guard !selected.isEmpty else {
            throw BunkerError(.invalidArgument, "No configured source matches --type \(type.rawValue)\(names.isEmpty ? "" : " and --source \(names.joined(separator: ", "))").")
        }
        return selected
    }

    /// The source that restores a snapshot's record: the configured one of that name and kind,
    /// else one its kind makes from the record (enough to restore somewhere else than the live
    /// place; see ``SourceKindDefinition/makeSource(restoring:)``).
    func source(for record: SnapshotSource) throws -> any Source {
        if let configured = sources.first(where: { $0.name == record.name }), configured.kind.rawValue == record.kind {
            return configured
        }
        return try SourceKinds.makeSource(restoring: record)
    }

    func isConfigured(_ record: SnapshotSource) -> Bool {
        sources.contains { $0.name == record.name && $0.kind.rawValue == record.kind }
    }
}
