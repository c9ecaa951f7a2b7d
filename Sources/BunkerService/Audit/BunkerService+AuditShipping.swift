import BunkerCore
import Foundation

/// What `bunker catalog restore` brought back.
public struct CatalogRestoreResult: Sendable, Codable {
    public var installation: String
    public var host: String
    public var segments: Int
    public var auditRows: Int64
    public var users: Int
    public var backups: Int

    enum CodingKeys: String, CodingKey {
        case installation, host, segments, users, backups
        case auditRows = "audit_rows"
    }
}

extension BunkerService {
    /// Ships the audit trail's rows that are not yet in the repository as one sealed segment
    /// (``AuditSegment``); returns how many rows it shipped. Every audited operation calls it
    /// as it ends, so that losing the machine loses at most what happened since.
    ///
    /// Shippers of one data directory take turns (a lock beside the catalog), and the position
    /// reached is kept there; without it (a new data directory), the repository's own last
    /// segment of this installation says where to go on.
    @discardableResult
    public func shipAuditTrail() async throws -> Int {
        let catalog = try catalog()
        let lock = try Catalog.lockExclusively(catalog.dataDirectory + "/audit-shipped.lock")
        defer { close(lock) }
        let installation = try catalog.installationID()
        var mark: AuditShippedMark
        if let kept = catalog.shippedMark() {
            mark = kept
        } else {
            mark = try await lastShippedMark(of: installation)
        }
        guard let segment = try catalog.auditSegment(after: mark, installation: installation) else { return 0 }
        let handle = ObjectHandle(.catalog, AuditSegment.name(installation: installation, first: segment.firstSeq, last: segment.lastSeq))
        do {
            try await repository.saveSealed(JSONEncoder().encode(segment), as: handle)
        } catch let error as BunkerError where error.code == .objectExists {
            // Shipped before, but the mark was not saved: that segment stands.
        }
        mark = AuditShippedMark(lastSeq: segment.lastSeq, anchorLines: segment.anchorFrom + segment.anchorLines.count)
        try catalog.saveShippedMark(mark)
        return segment.rows.count
    }

    /// ``shipAuditTrail()`` that only warns: an operation's result does not depend on it, and
    /// the next one ships what this one could not. A read-only repository ships nothing.
    func shipAuditTrailQuietly() async {
        guard repository.storage.capability(ReadOnlyStorage.self) == nil else { return }
        do {
            try await shipAuditTrail()
        } catch {
            let message = (error as? BunkerError)?.message ?? "\(error)"
            FileHandle.standardError.write(Data("bunker: warning: the audit trail could not be copied into the repository (\(message)); the next operation tries again.\n".utf8))
        }
    }

    /// Where the repository's segments of `installation` end (nothing shipped: row 0).
    private func lastShippedMark(of installation: String) async throws -> AuditShippedMark {
        let names = try await repository.storage.list(.catalog).compactMap { info in
            AuditSegment.parse(name: info.handle.name).map { (info.handle, $0) }
        }
        guard let (handle, _) = names.filter({ $0.1.installation == installation }).max(by: { $0.1.last < $1.1.last }) else {
            return AuditShippedMark(lastSeq: 0, anchorLines: 0)
        }
        let segment = try JSONDecoder().decode(AuditSegment.self, from: try await repository.loadSealed(handle))
        return AuditShippedMark(lastSeq: segment.lastSeq, anchorLines: segment.anchorFrom + segment.anchorLines.count)
    }

    /// The installations whose audit trails the repository holds, with the host that last
    /// shipped each and its rows.
    public static func shippedTrails(in repository: Repository) async throws -> [(installation: String, rows: Int64)] {
        var last: [String: Int64] = [:]
        for info in try await repository.storage.list(.catalog) {
            guard let parsed = AuditSegment.parse(name: info.handle.name) else { continue }
            last[parsed.installation] = max(last[parsed.installation] ?? 0, parsed.last)
        }
        return last.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Rebuilds the catalog of an empty data directory from `repository` alone: the audit trail
    /// (rows, signed anchors and key) and the users from the shipped segments of `installation`
    /// (needed only when several machines ship into the repository), then the backup metadata
    /// from the snapshots. `bunker audit verify` passes on the result, and the restore itself is
    /// the first new row of the trail (`catalog.restore`).
    public static func restoreCatalog(
        configuration: Configuration, repository: Repository, installation: String? = nil, by actor: AuditActor = .localUser()
    ) async throws -> CatalogRestoreResult {
        let trails = try await shippedTrails(in: repository)
        let chosen: String
        if let installation {
            guard trails.contains(where: { $0.installation == installation }) else {
                throw BunkerError(.invalidArgument, "The repository holds no audit trail of installation \(installation); it holds: \(trails.map(\.installation).joined(separator: ", ")).")
            }
            chosen = installation
        } else {
            guard let only = trails.first else {
                throw BunkerError(.invalidArgument, "The repository holds no audit trail: it was never written by a Bunker that ships its trail. `bunker catalog rebuild` re-creates the backup metadata alone.")
            }
            guard trails.count == 1 else {
                throw BunkerError(.invalidArgument, "The repository holds the audit trails of \(trails.count) installations: \(trails.map { "\($0.installation) (\($0.rows) rows)" }.joined(separator: ", ")). Choose one with --installation.")
            }
            chosen = only.installation
        }
        var handles: [(ObjectHandle, Int64)] = []
        for info in try await repository.storage.list(.catalog) {
            if let parsed = AuditSegment.parse(name: info.handle.name), parsed.installation == chosen { handles.append((info.handle, parsed.first)) }
        }
        var segments: [AuditSegment] = []
        for (handle, _) in handles.sorted(by: { $0.1 < $1.1 }) {
            segments.append(try JSONDecoder().decode(AuditSegment.self, from: try await repository.loadSealed(handle)))
        }
        let catalog = try Catalog.restoreTrail(dataDirectory: configuration.dataDirectory, from: segments, options: configuration.catalogOptions)
        let service = BunkerService(configuration: configuration, repository: repository, catalog: catalog)
        let last = segments[segments.count - 1]
        try catalog.record("catalog.restore", target: chosen, outcome: .success,
                           details: ["segments": String(segments.count), "rows": String(last.lastSeq), "host": last.host], by: actor)
        _ = try await service.rebuildCatalog(by: actor)
        await service.shipAuditTrailQuietly()
        return CatalogRestoreResult(
            installation: chosen, host: last.host, segments: segments.count, auditRows: last.lastSeq, users: last.users.count,
            backups: try catalog.backups(limit: Int.max).count)
    }
}
