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
    public func backup(_ request: SourceBackupRequest, progress: OperationProgress? = nil) async throws -> BackupResult {
        let selected = try selectSources(type: request.type, names: request.sourceNames)
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
            let records = prepared.map(\.record)
            backup.describeSources = { try records.map { try $0() } }
            return try await Archiver(repository: repository, request: backup, progress: progress).run()
        }
    }
}
