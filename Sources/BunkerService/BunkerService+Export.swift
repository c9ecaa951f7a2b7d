import BunkerCore
import BunkerSources
import Crypto
import Foundation

/// What an export wrote.
public struct ExportSummary: Sendable, Codable {
    /// One file in the archive.
    public struct Entry: Sendable, Codable {
        public var path: String
        public var size: UInt64
        public var sha256: String
    }

    /// A symbolic link in the archive (a ZIP symlink entry whose content is its target).
    public struct Symlink: Sendable, Codable {
        public var path: String
        public var target: String
    }

    /// An entry written under another name than the snapshot's (see ``ExportNames``).
    public struct Renamed: Sendable, Codable {
        /// Where it is in the archive.
        public var path: String
        /// Its path in the snapshot.
        public var original: String
    }

    public var snapshotID: String
    /// The archive written, or `-` when it was streamed (a download).
    public var file: String
    public var entries: [ExportSummary.Entry]
    public var symlinks: [Symlink] = []
    public var renamed: [Renamed] = []
    /// Bytes of the files in it (their content, before deflate).
    public var bytes: UInt64
    /// The SHA-256 of the ZIP itself, in hex: what `sha256sum` prints for the file.
    public var sha256: String
    /// Bytes of the ZIP itself.
    public var zipBytes: UInt64

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case file, entries, symlinks, renamed, bytes, sha256
        case zipBytes = "zip_bytes"
    }
}

/// The archive's `metadata.json`.
private struct ExportMetadata: Encodable {
    var snapshotID: String
    var time: Date
    var hostname: String
    var backupType: String?
    var tags: [String]
    var description: String?
    var sources: [SnapshotSource]
    var entries: [ExportSummary.Entry]
    var symlinks: [ExportSummary.Symlink]
    var renamed: [ExportSummary.Renamed]
    var totalBytes: UInt64
    /// Bunker's version: part of the archive's format (``BunkerService/exportFormat``).
    var tool: String

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case time, hostname, tags, description, sources, entries, symlinks, renamed, tool
        case backupType = "backup_type"
        case totalBytes = "total_bytes"
    }
}

extension BunkerService {
    /// Writes a snapshot as a ZIP in the Clinical Dashboard API's layout to the file `path`: see
    /// ``export(snapshot:by:progress:streamingTo:)`` for what it holds. The archive is written
    /// to a temporary file beside `path` and renamed into place only when complete.
    ///
    /// Audited as `export` by `actor`.
    public func export(snapshot reference: String, to path: String, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> ExportSummary {
        let target = Configuration.absolute(path, relativeTo: nil)
        return try await audited("export", target: reference, by: actor, details: ["file": path]) {
            if FileManager.default.fileExists(atPath: target) {
                throw BunkerError(.invalidArgument, "\(target) already exists; remove it or choose another file.")
            }
            let temp = target + ".partial-\(UUID().uuidString.prefix(8).lowercased())"
            let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw BunkerError(.invalidArgument, "Cannot create \(temp): \(String(cString: strerror(errno))).")
            }
            var closed = false
            defer {
                if !closed { close(fd) }
                unlink(temp)
            }
            var summary = try await self.lockedExport(snapshot: reference, progress: progress) { data in
                try writeAll(data, to: fd, path: temp)
            }
            guard fsync(fd) == 0 else {
                throw BunkerError(.sourceIO, "Cannot flush \(temp): \(String(cString: strerror(errno))).")
            }
            close(fd)
            closed = true
            guard rename(temp, target) == 0 else {
                throw BunkerError(.sourceIO, "Cannot move the archive to \(target): \(String(cString: strerror(errno))).")
            }
            summary.file = target
            return summary
        } describe: { summary in
            AuditedResult(target: summary.snapshotID, details: ["file": summary.file, "entries": String(summary.entries.count), "bytes": String(summary.bytes), "sha256": summary.sha256])
        }
    }

    /// Streams a snapshot as a ZIP in the Clinical Dashboard API's layout into `output`, front to back, holding one piece of it
    /// at a time (up to a repository chunk, or 256 KiB of gathered headers and small files) and
    /// writing none of it to disk (only an SQLite source's SQL text is made in the scratch
    /// directory first, from a copy of its database).
    ///
    /// The archive holds `database.sql` (the plain SQL of the one database source; with several,
    /// each under its source's name), the file trees under their source names with their
    /// symbolic links as ZIP symlink entries, an SQLite source's database file beside its
    /// `.dump`, `metadata.json` (which also lists the links, and any entry whose name had to
    /// change: ``ExportNames``) and a `SHA256SUMS` that `sha256sum -c` accepts. Every entry
    /// streams from the repository through a SHA-256 check.
    ///
    /// If `output` throws (a download's client went away), the export stops with that error.
    /// Audited as `export` by `actor`.
    public func export(
        snapshot reference: String, by actor: AuditActor, progress: OperationProgress? = nil,
        streamingTo output: @escaping @Sendable (Data) async throws -> Void
    ) async throws -> ExportSummary {
        try await audited("export", target: reference, by: actor, details: ["file": "-"]) {
            try await self.lockedExport(snapshot: reference, progress: progress, output: output)
        } describe: { summary in
            AuditedResult(target: summary.snapshotID, details: ["file": summary.file, "entries": String(summary.entries.count), "bytes": String(summary.bytes), "sha256": summary.sha256])
        }
    }

    /// The export under a shared lock: a prune (exclusive) cannot delete packs it is reading.
    /// A complete archive's SHA-256 is recorded in the catalog with ``exportFormat``, for
    /// ``archiveChecksum(of:)``.
    private func lockedExport(snapshot reference: String, progress: OperationProgress?, output: @escaping @Sendable (Data) async throws -> Void) async throws -> ExportSummary {
        let summary = try await repository.withLock(exclusive: false) {
            try await self.writeExport(snapshot: reference, progress: progress, output: output)
        }
        // A catalog that cannot be written loses only the record: the next export makes it.
        try? catalog().recordArchive(snapshotID: summary.snapshotID, sha256: summary.sha256, format: exportFormat)
        return summary
    }

    /// Writes the ZIP of `snapshotID` into a hasher only (nothing on disk, nobody receives it) and
    /// records its SHA-256, the API's `checksum`; returns it. Not audited: nothing leaves.
    @discardableResult
    public func recordArchiveChecksum(snapshot snapshotID: String, progress: OperationProgress? = nil) async throws -> String {
        try await lockedExport(snapshot: snapshotID, progress: progress) { _ in }.sha256
    }

    /// The deflate level of the export's ZIP entries: the configured compression level
    /// (`BACKUP_COMPRESSION_LEVEL`, else `compression_level`, else the repository's), which is a
    /// zstd level of 1–19, capped at deflate's highest, 9. The Clinical Dashboard backup guide
    /// gives it as 1–9, where the two agree.
    public var exportDeflateLevel: Int {
        min(9, max(1, configuration.repository.compressionLevel ?? repository.config.compressionLevel))
    }

    /// What the bytes of an export depend on besides the snapshot: Bunker's version (the layout,
    /// `metadata.json`'s `tool`), zlib's and the deflate level. A recorded archive checksum holds
    /// for this format only.
    public var exportFormat: String {
        "bunker \(bunkerVersion); zlib \(Deflater.zlibVersion); deflate \(exportDeflateLevel)"
    }

    /// The SHA-256 of the ZIP an export of `record`'s snapshot writes (the file `sha256sum`
    /// checks): recorded by the last complete export; nil if none was made in the current
    /// ``exportFormat``.
    public func archiveChecksum(of record: BackupRecord) -> String? {
        record.archiveFormat == exportFormat ? record.archiveSHA256 : nil
    }

    /// ``archiveChecksum(of:)`` of the catalog's record of a snapshot (a full id); nil when it has
    /// none or the catalog cannot be read.
    public func archiveChecksum(ofSnapshot snapshotID: String) -> String? {
        (try? catalog().backup(id: snapshotID)).flatMap { $0 }.flatMap(archiveChecksum(of:))
    }

    /// One line of `SHA256SUMS` as GNU `sha256sum` writes it: a name with a backslash, newline or
    /// carriage return is escaped and the line starts with a backslash, so that `sha256sum -c`
    /// reads every name back exactly.
    static func checksumLine(sha256: String, path: String) -> String {
        guard path.contains(where: { $0 == "\\" || $0 == "\n" || $0 == "\r" }) else { return "\(sha256)  \(path)\n" }
        let escaped = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
        return "\\\(sha256)  \(escaped)\n"
    }

    private func writeExport(snapshot reference: String, progress: OperationProgress?, output: @escaping @Sendable (Data) async throws -> Void) async throws -> ExportSummary {
        let (id, snapshot) = try await repository.findSnapshot(reference)
        let archive = ExportWriter(
            zip: ZipWriter(level: exportDeflateLevel, output: output), repository: repository, madeAt: snapshot.time, progress: progress,
            scratch: configuration.scratchDirectory)
        let root = try await repository.loadTree(snapshot.tree)
        let records = snapshot.sources ?? []
        // The one database's SQL is `database.sql` at the top, whatever the trees hold.
        if records.filter(\.sourceKind.isDatabase).count == 1 {
            archive.topSQL = archive.names.claim("database.sql", under: nil, original: "database.sql")
        }
        for node in root.nodes where node.hasSafeName {
            let place = ExportWriter.SourcePlace(writer: archive, name: ExportNames.name(of: node))
            // A plain path backup, or a source of a kind this version does not know: its tree as it is.
            guard let record = records.first(where: { $0.name == place.name }), let source = try? self.source(for: record) else {
                try await place.addTree(node)
                continue
            }
            try await source.export(node, record: record, to: place)
        }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let total = archive.entries.reduce(0) { $0 + $1.size }
        let metadata = ExportMetadata(
            snapshotID: id.hex, time: snapshot.time, hostname: snapshot.hostname, backupType: snapshot.backupType,
            tags: snapshot.tags, description: snapshot.description, sources: records, entries: archive.entries, symlinks: archive.symlinks,
            renamed: archive.names.renamed, totalBytes: total, tool: "bunker \(bunkerVersion)")
        let metadataBytes = try encoder.encode(metadata)
        let metadataName = archive.names.bunkerFile("metadata.json")
        try await archive.add(metadataName, bytes: metadataBytes)
        archive.entries.append(.init(path: metadataName, size: UInt64(metadataBytes.count), sha256: ID(digest: SHA256.hash(data: metadataBytes)).hex))

        let sums = archive.entries.map { Self.checksumLine(sha256: $0.sha256, path: $0.path) }.joined()
        try await archive.add(archive.names.bunkerFile("SHA256SUMS"), bytes: Data(sums.utf8))
        let sha256 = try await archive.zip.finish()
        return ExportSummary(
            snapshotID: id.hex, file: "-", entries: archive.entries, symlinks: archive.symlinks, renamed: archive.names.renamed, bytes: total,
            sha256: sha256, zipBytes: archive.zip.bytesWritten)
    }
}
