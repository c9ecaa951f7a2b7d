import Foundation

extension BunkerError.Code {
    /// A WAL file of that name is archived with other content: PostgreSQL must never be told
    /// it is archived (two clusters archive into one source, or the archive was tampered with).
    public static let walConflict = Self("wal_conflict")
    /// The WAL comes from another cluster (another system identifier) than the source archives.
    public static let walClusterMismatch = Self("wal_cluster_mismatch")
}

/// What ``WalArchive/push(_:contents:)`` did.
public struct WalPushResult: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        /// Stored now, durably.
        case stored
        /// A copy with the same content was archived before (a retry after a crash or timeout).
        case alreadyArchived = "already_archived"
    }

    public var outcome: Outcome
    public var file: String
    public var size: Int
    /// Bytes written to the storage (0 when already archived).
    public var storedBytes: Int
    public var object: String
}

/// The archived WAL of one source (one PostgreSQL cluster): `bunker wal push` and `wal fetch`.
///
/// PostgreSQL's rules for an archive (`archive_command`, `restore_command`) are kept exactly:
/// - a push returns only once the storage holds the object durably (``Storage/save(_:data:)``
///   returns after fsync, or after S3's acknowledged PUT);
/// - a file already archived with identical content is accepted again (PostgreSQL retries a
///   push whose answer it did not get: a crash, a timeout), and one with different content is
///   refused with ``BunkerError/Code/walConflict``, never overwritten;
/// - a segment from another cluster than the one the source first archived is refused with
///   ``BunkerError/Code/walClusterMismatch`` (system identifier in the segment's first page);
///   so is a segment of a timeline whose history file was never archived (PostgreSQL archives
///   a new timeline's history file before its segments);
/// - a fetch of a file that is not archived answers nil (PostgreSQL then tries other places),
///   and any other failure throws, so that recovery stops instead of ending early.
///
/// It takes no repository lock and no writer claim: WAL objects are written once under names no
/// other operation writes, and a push must run beside a backup or prune, thousands of times a day.
public struct WalArchive: Sendable {
    public let repository: Repository
    public let source: String
    let scope: String

    public init(repository: Repository, source: String) {
        self.repository = repository
        self.source = source
        self.scope = WalObject.scope(of: source)
    }

    var storage: any Storage { repository.storage }

    // MARK: - Push

    /// Archives `contents`, the WAL file named `file` (PostgreSQL's `%f`).
    public func push(_ file: String, contents: Data) async throws -> WalPushResult {
        guard let name = WalFileName(file), name.kind != .stream else {
            throw BunkerError(.invalidArgument, "\"\(file)\" is not the name of a WAL file (a segment, .history, .backup or .partial file); archive_command must pass %p, the path of the file PostgreSQL archives.")
        }
        var systemIdentifier: UInt64?
        if name.holdsWAL {
            let header = try WalSegmentHeader(reading: contents, file: file)
            guard contents.count == header.segmentSize else {
                throw BunkerError(.invalidArgument, "\(file) is \(contents.count) bytes, but its header says the cluster's segments are \(header.segmentSize) bytes: the file is cut short or damaged, so it is not archived.")
            }
            try await checkCluster(header, file: file)
            systemIdentifier = header.systemIdentifier
        }
        if name.timeline > 1, name.kind != .history {
            try await checkTimelineKnown(name)
        }
        let sha = ID.sha256(of: contents).hex
        let existing: (header: WalObject.Header, contents: Data, object: String)?
        do {
            existing = try await archivedCopy(of: name)
        } catch let error as BunkerError where error.code == .corruptObject {
            // Every copy is damaged: the server's file is the one to keep; verify names the damage.
            existing = nil
        }
        if let existing {
            if existing.header.sha256 == sha {
                return WalPushResult(outcome: .alreadyArchived, file: file, size: contents.count, storedBytes: 0, object: existing.object)
            }
            throw BunkerError(.walConflict, "\(file) is already archived for source \(source) with different content (archived: \(existing.header.size) bytes, SHA-256 \(existing.header.sha256.prefix(16))…, pushed \(Timestamp.format(existing.header.pushedAt)); now: \(contents.count) bytes, SHA-256 \(sha.prefix(16))…). It was not overwritten. Two clusters may be archiving into one source: give each cluster its own source (--source), and check the archive_command of every server.")
        }
        return try await store(file, contents: contents, sha: sha, systemIdentifier: systemIdentifier, timeline: name.timeline)
    }

    /// Seals and saves one WAL object.
    private func store(_ file: String, contents: Data, sha: String, systemIdentifier: UInt64?, timeline: UInt32) async throws -> WalPushResult {
        let header = WalObject.Header(
            source: source, systemIdentifier: systemIdentifier.map(String.init), timeline: timeline, file: file,
            size: contents.count, sha256: sha, pushedAt: repository.now(), compression: "none")
        let (plaintext, _) = try WalObject.encode(contents, header: header, compressionLevel: repository.config.compressionLevel)
        let sealed = try repository.key.seal(plaintext)
        let object = WalObject.name(scope: scope, file: file, stored: sealed)
        FaultPoints.hit("wal-push-before-save")
        try await storage.save(ObjectHandle(.wal, object), data: sealed)
        FaultPoints.hit("wal-push-after-save")
        return WalPushResult(outcome: .stored, file: file, size: contents.count, storedBytes: sealed.count, object: object)
    }

    // MARK: - Streaming

    /// Stores what the server has written so far of `segment` (the segment being written, as
    /// `pg_receivewal` receives it: a `.partial` file of the segment's full size, zero after the
    /// last record), as `SEGMENT.stream`, then removes the copies it supersedes. Unlike every
    /// other WAL file, a streamed copy is replaced: it grows as the server writes. It is checked
    /// as a segment is (same cluster, known timeline), and ``fetch(_:)`` hands it out for the
    /// segment only while the segment itself is not archived.
    @discardableResult
    public func pushStreamed(_ segment: String, contents: Data) async throws -> WalPushResult {
        guard let name = WalFileName(segment), name.kind == .segment else {
            throw BunkerError(.invalidArgument, "\"\(segment)\" is not the name of a WAL segment; only a segment is streamed.")
        }
        let header = try WalSegmentHeader(reading: contents, file: segment)
        guard contents.count == header.segmentSize else {
            throw BunkerError(.invalidArgument, "The streamed copy of \(segment) is \(contents.count) bytes, but its header says the cluster's segments are \(header.segmentSize) bytes; it is not stored.")
        }
        try await checkCluster(header, file: segment)
        if name.timeline > 1 { try await checkTimelineKnown(name) }
        let file = segment + ".stream"
        let older = try await storage.list(.wal, prefix: WalObject.prefix(scope: scope, file: file))
            .filter { matches(WalObject.Name($0.handle.name), file: file) }
        let result = try await store(file, contents: contents, sha: ID.sha256(of: contents).hex, systemIdentifier: header.systemIdentifier, timeline: name.timeline)
        for info in older where info.handle.name != result.object {
            try? await storage.remove(info.handle)
        }
        return result
    }

    /// Removes the streamed copies of segments that are archived whole (``push(_:contents:)``
    /// by `archive_command`); returns how many.
    @discardableResult
    public func removeStreamedCopiesOfArchivedSegments() async throws -> Int {
        var segments: Set<String> = []
        var streamed: [(segment: String, handle: ObjectHandle)] = []
        for info in try await storage.list(.wal, prefix: scope + "-") {
            guard case .file(let s, let file, _)? = WalObject.Name(info.handle.name), s == scope else { continue }
            if file.kind == .segment { segments.insert(file.text) }
            if file.kind == .stream { streamed.append((String(file.text.dropLast(".stream".count)), info.handle)) }
        }
        var removed = 0
        for (segment, handle) in streamed where segments.contains(segment) {
            try await storage.remove(handle)
            removed += 1
        }
        return removed
    }

    /// Refuses a segment from another cluster than the source's; records the cluster on the
    /// source's first segment.
    private func checkCluster(_ header: WalSegmentHeader, file: String) async throws {
        let recorded = try await clusterRecords()
        if let other = recorded.first(where: { $0 != header.systemIdentifier }) {
            throw BunkerError(.walClusterMismatch, "\(file) comes from the PostgreSQL cluster with system identifier \(header.systemIdentifier), but source \(source) archives the cluster \(other); it was not archived, so that two clusters never mix. If this server is a new cluster (a fresh initdb, pg_upgrade), give it a new source name in bunker.toml and pass --source; otherwise fix archive_command on the server that runs it.")
        }
        guard recorded.isEmpty else { return }
        let record = WalObject.Cluster(source: source, systemIdentifier: String(header.systemIdentifier), segmentSize: header.segmentSize, registeredAt: repository.now())
        do {
            try await repository.saveSealed(try JSONCoding.encoder.encode(record),
                                            as: ObjectHandle(.wal, WalObject.clusterName(scope: scope, systemIdentifier: header.systemIdentifier)))
        } catch let error as BunkerError where error.code == .objectExists {
            // Another push recorded the same cluster meanwhile.
        }
    }

    /// Refuses a file of timeline N > 1 whose `0000000N.history` is not archived.
    private func checkTimelineKnown(_ name: WalFileName) async throws {
        let history = String(format: "%08X.history", name.timeline)
        let found = try await storage.list(.wal, prefix: WalObject.prefix(scope: scope, file: history))
        guard !found.contains(where: { matches(WalObject.Name($0.handle.name), file: history) }) else { return }
        throw BunkerError(.walClusterMismatch, "\(name.text) belongs to timeline \(name.timeline), whose history file \(history) is not archived for source \(source); it was not archived. PostgreSQL archives a new timeline's history file first: this server's WAL may belong to another source, or \(history) failed to archive (see the server's log).")
    }

    /// The system identifiers recorded for the source (one, or none before its first segment).
    public func clusterRecords() async throws -> [UInt64] {
        try await storage.list(.wal, prefix: scope + "-cluster-").compactMap { info in
            if case .cluster(let s, let sysid) = WalObject.Name(info.handle.name), s == scope { return sysid }
            return nil
        }
    }

    /// The cluster record (system identifier, segment size) of the source, if one is archived.
    public func cluster() async throws -> WalObject.Cluster? {
        guard let sysid = try await clusterRecords().sorted().first else { return nil }
        let data = try await repository.loadSealed(ObjectHandle(.wal, WalObject.clusterName(scope: scope, systemIdentifier: sysid)))
        return try JSONCoding.decoder.decode(WalObject.Cluster.self, from: data)
    }

    private func matches(_ parsed: WalObject.Name?, file: String) -> Bool {
        if case .file(let s, let f, _) = parsed, s == scope, f.text == file { return true }
        return false
    }

    /// The first intact archived copy of `name`, read and decrypted (of a streamed copy, the
    /// newest); nil when none is archived. A copy that is damaged is skipped, and fails the call
    /// only when no copy is intact.
    private func archivedCopy(of name: WalFileName) async throws -> (header: WalObject.Header, contents: Data, object: String)? {
        var candidates = try await storage.list(.wal, prefix: WalObject.prefix(scope: scope, file: name.text))
            .filter { matches(WalObject.Name($0.handle.name), file: name.text) }
            .sorted { ($0.modified ?? .distantPast, $0.handle.name) < ($1.modified ?? .distantPast, $1.handle.name) }
        if name.kind == .stream { candidates.reverse() }
        var damage: (any Error & Sendable)?
        for info in candidates {
            do {
                let plaintext = try await loadChecked(info.handle)
                let (header, contents) = try WalObject.decode(plaintext, object: info.handle.name)
                guard header.file == name.text, header.source == source else {
                    throw WalObject.damaged(info.handle.name, "it holds \(header.file) of source \(header.source), not what its name says")
                }
                return (header, contents, info.handle.name)
            } catch let error as BunkerError where error.code == .corruptObject {
                damage = error
            } catch let error as BunkerError where error.code == .objectNotFound {
                continue
            }
        }
        if let damage {
            throw BunkerError(.corruptObject, "Every archived copy of \(name.text) for source \(source) is damaged; run `bunker verify --read-data`. The last problem: \(damage)", cause: damage)
        }
        return nil
    }

    /// Loads a WAL object, checks its SHA-256 against its name, and decrypts it.
    func loadChecked(_ handle: ObjectHandle) async throws -> Data {
        let data = try await storage.load(handle)
        guard case .file(_, _, let stored) = WalObject.Name(handle.name), ID.sha256(of: data) == stored else {
            throw WalObject.damaged(handle.name, "its SHA-256 does not match its name")
        }
        do {
            return try repository.key.open(data)
        } catch {
            throw WalObject.damaged(handle.name, "it fails authentication")
        }
    }

    // MARK: - Fetch

    /// The archived file named `file` (PostgreSQL's `%f`), checked end to end; nil when it is
    /// not archived. Throws for anything else: a damaged copy, an unreadable repository.
    public func fetch(_ file: String) async throws -> Data? {
        guard let name = WalFileName(file) else {
            throw BunkerError(.invalidArgument, "\"\(file)\" is not the name of a WAL file; restore_command must pass %f (the file's name) and then %p (where to write it).")
        }
        if let archived = try await archivedCopy(of: name) { return archived.contents }
        // The segment being written when the server was lost: what was streamed of it.
        guard name.kind == .segment, let streamed = WalFileName(file + ".stream") else { return nil }
        return try await archivedCopy(of: streamed)?.contents
    }
}
