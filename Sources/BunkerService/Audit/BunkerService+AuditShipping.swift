import BunkerCore
import Foundation

/// What `bunker catalog restore` brought back.
public struct CatalogRestoreResult: Sendable, Codable {
    /// The installation whose trail was restored.
    public var installation: String
    /// The id this data directory continues the trail under (see ``Catalog/restoreTrail``).
    public var newInstallation: String
    public var host: String
    public var segments: Int
    public var auditRows: Int64
    public var users: Int
    public var backups: Int

    enum CodingKeys: String, CodingKey {
        case installation, host, segments, users, backups
        case auditRows = "audit_rows"
        case newInstallation = "new_installation"
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
        guard let segment = try await Self.lastSegment(of: installation, in: repository) else {
            return AuditShippedMark(lastSeq: 0, anchorLines: 0)
        }
        return AuditShippedMark(lastSeq: segment.lastSeq, anchorLines: segment.anchorFrom + segment.anchorLines.count)
    }

    /// The trails of `trails` that no other trail carries on: trail A is carried on by trail B
    /// when B holds A's last row, the same row (its hash chains everything before it).
    private static func trailsNotContinuedElsewhere(_ trails: [(installation: String, rows: Int64)], in repository: Repository) async throws -> [(installation: String, rows: Int64)] {
        guard trails.count > 1 else { return trails }
        let names = try await shippedSegments(in: repository)
        var loaded: [String: AuditSegment] = [:]
        func row(_ seq: Int64, of installation: String) async throws -> AuditRecord? {
            guard let entry = names.first(where: { $0.parsed.installation == installation && $0.parsed.first <= seq && seq <= $0.parsed.last }) else { return nil }
            if loaded[entry.handle.name] == nil {
                loaded[entry.handle.name] = try JSONDecoder().decode(AuditSegment.self, from: try await repository.loadSealed(entry.handle))
            }
            return loaded[entry.handle.name]?.rows.first { $0.seq == seq }
        }
        var current: [(installation: String, rows: Int64)] = []
        for trail in trails {
            let last = try await row(trail.rows, of: trail.installation)
            var carriedOn = false
            for other in trails where other.installation != trail.installation && other.rows > trail.rows && !carriedOn {
                if let last, let same = try await row(trail.rows, of: other.installation), same.hash == last.hash { carriedOn = true }
            }
            if !carriedOn { current.append(trail) }
        }
        return current
    }

    /// The last segment `installation` shipped into `repository`, if any.
    private static func lastSegment(of installation: String, in repository: Repository) async throws -> AuditSegment? {
        let mine = try await shippedSegments(in: repository).filter { $0.parsed.installation == installation }
        guard let last = mine.max(by: { $0.parsed.last < $1.parsed.last }) else { return nil }
        return try JSONDecoder().decode(AuditSegment.self, from: try await repository.loadSealed(last.handle))
    }

    /// Every audit segment in `repository`, with what its name says (one listing).
    private static func shippedSegments(in repository: Repository) async throws -> [(handle: ObjectHandle, parsed: (installation: String, first: Int64, last: Int64))] {
        try await repository.storage.list(.catalog).compactMap { info in
            AuditSegment.parse(name: info.handle.name).map { (handle: info.handle, parsed: $0) }
        }
    }

    /// The installations whose audit trails the repository holds, with the host that last
    /// shipped each and its rows.
    public static func shippedTrails(in repository: Repository) async throws -> [(installation: String, rows: Int64)] {
        var last: [String: Int64] = [:]
        for (_, parsed) in try await shippedSegments(in: repository) {
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
            guard !trails.isEmpty else {
                throw BunkerError(.invalidArgument, "The repository holds no audit trail: it was never written by a Bunker that ships its trail. `bunker catalog rebuild` re-creates the backup metadata alone.")
            }
            // A trail that another one carries on (a machine restored from it continues it under
            // an id of its own), with nothing after what was carried on, is that other trail's
            // past: the one left is the whole trail.
            let current = try await trailsNotContinuedElsewhere(trails, in: repository)
            guard current.count == 1 else {
                var described: [String] = []
                for trail in trails {
                    let last = try? await lastSegment(of: trail.installation, in: repository)
                    described.append("\(trail.installation) (\(trail.rows) rows\(last.map { ", last shipped from \($0.host) at \($0.shippedAt)" } ?? ""))")
                }
                throw BunkerError(.invalidArgument, "The repository holds the audit trails of \(trails.count) installations: \(described.joined(separator: ", ")). Choose one with --installation. A machine whose catalog was restored from another's trail continues it under an id of its own, so the machine lost last is usually the one that shipped last.")
            }
            chosen = current[0].installation
        }
        let handles = try await shippedSegments(in: repository).filter { $0.parsed.installation == chosen }.map { ($0.handle, $0.parsed.first) }
        var segments: [AuditSegment] = []
        for (handle, _) in handles.sorted(by: { $0.1 < $1.1 }) {
            segments.append(try JSONDecoder().decode(AuditSegment.self, from: try await repository.loadSealed(handle)))
        }
        let catalog = try Catalog.restoreTrail(dataDirectory: configuration.dataDirectory, from: segments, options: configuration.catalogOptions)
        let service = BunkerService(configuration: configuration, repository: repository, catalog: catalog)
        let last = segments[segments.count - 1]
        let continuing = try catalog.installationID()
        try catalog.record("catalog.restore", target: chosen, outcome: .success,
                           details: ["segments": String(segments.count), "rows": String(last.lastSeq), "host": last.host, "new_installation": continuing], by: actor)
        _ = try await service.rebuildCatalog(by: actor)
        await service.shipAuditTrailQuietly()
        return CatalogRestoreResult(
            installation: chosen, newInstallation: continuing, host: last.host, segments: segments.count, auditRows: last.lastSeq, users: last.users.count,
            backups: try catalog.backups(limit: Int.max).count)
    }
}
