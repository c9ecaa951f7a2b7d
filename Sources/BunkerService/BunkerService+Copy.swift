import BunkerCore
import Foundation

/// Which snapshots `bunker copy` takes.
public struct CopyRequest: Sendable {
    /// Snapshot ids (or unique prefixes, or `latest`); empty: every snapshot the filters keep.
    public var snapshots: [String] = []
    /// Only the newest snapshot (after the filters).
    public var latestOnly = false
    /// Only snapshots with every one of these tags.
    public var tags: [String] = []
    /// Only snapshots of this backup type.
    public var type: BackupType?
    /// The destination as the audit trail and the notifications name it (its location, never a
    /// secret).
    public var destinationName: String

    public init(destinationName: String) {
        self.destinationName = destinationName
    }
}

extension BunkerService {
    /// Copies snapshots of this service's repository into `destination` (the DermAI cloud and
    /// off-site tiers): incremental, resumable, every blob checked; see ``Copier``. Audited as
    /// `copy`, and notified as `copy_failed` when it fails.
    public func copy(
        _ request: CopyRequest, to destination: Repository, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil
    ) async throws -> CopyReport {
        try await copy(request, opening: { destination }, by: actor, progress: progress)
    }

    /// ``copy(_:to:by:progress:)`` into `[repositories.NAME]`, opened with its password file;
    /// a destination that cannot be opened (a bucket out of reach) fails the copy like any
    /// other cause: audited and notified.
    public func copy(
        _ request: CopyRequest, toRepositoryNamed name: String, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil
    ) async throws -> CopyReport {
        try await copy(request, opening: { try await self.openRepository(named: name) }, by: actor, progress: progress)
    }

    private func copy(
        _ request: CopyRequest, opening: @Sendable () async throws -> Repository, by actor: AuditActor, progress: OperationProgress?
    ) async throws -> CopyReport {
        try await notifying(by: actor) { (_: CopyReport) in
            .copySucceeded(to: request.destinationName, now: repository.now())
        } failure: { error in
            .copyFailed(to: request.destinationName, error: error, now: repository.now())
        } _: {
            try await audited("copy", target: request.destinationName, by: actor, details: ["snapshots": request.snapshots.joined(separator: ",")]) {
                let ids = try await selectForCopy(request)
                let destination = try await opening()
                return try await Copier(from: repository, to: destination, progress: progress).copy(ids)
            } describe: { report in
                AuditedResult(details: [
                    "copied": String(report.copied.count), "already_there": String(report.alreadyThere.count),
                    "blobs": String(report.blobsCopied), "bytes_stored": String(report.bytesStored),
                ])
            }
        }
    }

    private func selectForCopy(_ request: CopyRequest) async throws -> [ID] {
        var chosen: [(id: ID, snapshot: Snapshot)]
        if request.snapshots.isEmpty {
            chosen = try await repository.snapshots()
        } else {
            chosen = []
            for reference in request.snapshots { chosen.append(try await repository.findSnapshot(reference)) }
        }
        chosen = chosen.filter { item in
            Set(request.tags).isSubset(of: item.snapshot.tags) && (request.type.map { item.snapshot.backupType == $0.rawValue } ?? true)
        }
        chosen.sort { $0.snapshot.time < $1.snapshot.time }
        if request.latestOnly, let last = chosen.last { chosen = [last] }
        guard !chosen.isEmpty else {
            throw BunkerError(.snapshotNotFound, "No snapshot matches what was asked to copy; `bunker snapshots` lists them.")
        }
        return chosen.map(\.id)
    }
}
