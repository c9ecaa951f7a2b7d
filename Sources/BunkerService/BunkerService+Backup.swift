import BunkerCore
import BunkerSources
import Foundation

/// What to back up from the configured sources.
public struct SourceBackupRequest: Sendable {
    public var type: BackupType = .full
    /// Only these sources (empty: every source of `type`).
    public var sourceNames: [String] = []
    public var tags: [String] = []
    public var description: String?
    public var compressionLevel: Int?

    public init(type: BackupType = .full) {
        self.type = type
    }
}

extension BunkerService {
    /// Backs up the selected sources into one snapshot.
    ///
    /// Each source first makes its consistent view (an SQLite copy, a running pg_dump); the
    /// archiver then stores them as one directory each; the snapshot is written last, with what
    /// each source recorded (row counts). Any source failing fails the whole backup, and no
    /// snapshot is written.
    ///
    /// Audited as `backup` by `actor`; the snapshot's metadata row is written with the end row.
    public func backup(_ request: SourceBackupRequest, by actor: AuditActor = .localUser(), reason: String? = nil, progress: OperationProgress? = nil) async throws -> BackupResult {
        let names = request.sourceNames.isEmpty ? sources.filter { request.type.includes($0.kind) }.map(\.name) : request.sourceNames
        return try await notifying(by: actor) { result in
            .backupSucceeded(result, request: request, now: repository.now())
        } failure: { error in
            .backupFailed(error, sources: names, request: request, now: repository.now())
        } _: {
            let result = try await auditedBackup(request, by: actor, reason: reason, progress: progress)
            if configuration.server.archiveChecksum == .afterBackup {
                // The Clinical Dashboard API answers the ZIP's SHA-256 with the backup; a failure
                // here costs only that value (null until the first export), never the backup.
                // The backup is committed and its job ended: the ZIP is only read, so the next
                // backup, restore or cleanup need not wait for it.
                JobRunner.current?.writesDone()
                progress?.update { $0.currentPath = "ZIP checksum" }
                do {
                    try await recordArchiveChecksum(snapshot: result.snapshotID.hex)
                } catch {
                    FileHandle.standardError.write(Data("bunker: warning: the ZIP checksum of backup \(result.snapshotID.short) was not worked out (it will be at its first export): \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
                }
            }
            return result
        }
    }

    /// ``backup(_:by:reason:progress:)`` without notifications: the safety copy before a restore
    /// is told about in the restore's message.
    func auditedBackup(_ request: SourceBackupRequest, by actor: AuditActor, reason: String?, progress: OperationProgress?) async throws -> BackupResult {
        let selected = try selectSources(type: request.type, names: request.sourceNames)
        var details = ["backup_type": request.type.rawValue, "sources": selected.map(\.name).joined(separator: ",")]
        details["description"] = request.description
        return try await audited("backup", target: "sources:" + selected.map(\.name).joined(separator: ","), by: actor, reason: reason, details: details) {
            try await runBackup(request, selected: selected, progress: progress)
        } describe: { Self.backupRecorded($0, by: actor) }
    }

    /// Backs up plain paths (not configured sources) into one snapshot; audited as `backup`.
    public func backup(paths request: BackupRequest, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> BackupResult {
        var details = ["paths": request.paths.joined(separator: ",")]
        details["description"] = request.description
        return try await notifying(by: actor) { result in
            .backupSucceeded(result, request: nil, now: repository.now())
        } failure: { error in
            .backupFailed(error, sources: request.paths, request: nil, now: repository.now())
        } _: {
            try await audited("backup", target: "paths:" + request.paths.joined(separator: ","), by: actor, details: details) {
                var request = request
                request.compressionLevel = request.compressionLevel ?? configuration.repository.compressionLevel
                request.storedBudget = try await backupRoom(tags: request.tags)
                let archiver = try Archiver(repository: repository, request: request, progress: progress)
                return try await repository.withLock(exclusive: false) { try await archiver.run() }
            } describe: { Self.backupRecorded($0, by: actor) }
        }
    }

    private func runBackup(_ request: SourceBackupRequest, selected: [any Source], progress: OperationProgress?) async throws -> BackupResult {
        // Before any source is dumped or copied (a physical one forces a checkpoint).
        if repository.isReadOnly { throw ReadOnlyStorage.refusal("back up") }
        if let local = repository.storage.backend as? LocalStorage {
            try configuration.checkRepositoryIsOutsideSources(local.root)
        }
        let scratch = try configuration.scratchDirectory()
        return try await repository.withLock(exclusive: false) {
            var prepared: [PreparedBackup] = []
            defer { for item in prepared { item.cleanup() } }
            for source in selected {
                progress?.update { $0.currentPath = "preparing \(source.name)" }
                prepared.append(try await source.prepareBackup(scratch: scratch))
            }
            var backup = BackupRequest(items: prepared.map(\.item), paths: selected.map(\.origin))
            backup.backupType = request.type.rawValue
            backup.tags = request.tags
            backup.description = request.description
            backup.compressionLevel = request.compressionLevel ?? configuration.repository.compressionLevel
            backup.storedBudget = try await backupRoom(tags: request.tags)
            let records = prepared.map(\.record)
            backup.describeSources = { try records.map { try $0() } }
            return try await Archiver(repository: repository, request: backup, progress: progress).run()
        }
    }
}
