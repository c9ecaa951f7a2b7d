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

    public var snapshotID: String
    public var file: String
    public var entries: [Entry]
    public var bytes: UInt64

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case file, entries, bytes
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
    var totalBytes: UInt64
    var tool: String
    var exportedAt: Date

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case time, hostname, tags, description, sources, entries, tool
        case backupType = "backup_type"
        case totalBytes = "total_bytes"
        case exportedAt = "exported_at"
    }
}

extension BunkerService {
    /// Writes a snapshot as the seed's ZIP: `database.sql` (the plain SQL of the one database
    /// source; with several, each under its source's name), the file trees under their source
    /// names, an SQLite source's database file beside its `.dump`, `metadata.json` and a
    /// `SHA256SUMS` that `sha256sum -c` accepts.
    ///
    /// Every entry streams from the repository through a SHA-256 check; the archive is written
    /// to a temporary file beside `path` and renamed into place only when complete.
    ///
    /// Audited as `export` by `actor`.
    public func export(snapshot reference: String, to path: String, by actor: Actor = .localUser(), progress: OperationProgress? = nil) async throws -> ExportSummary {
        try await audited("export", target: reference, by: actor, details: ["file": path]) {
            // A shared lock: a prune (exclusive) cannot delete packs this export is reading.
            try await repository.withLock(exclusive: false) {
                try await self.writeExport(snapshot: reference, to: path, progress: progress)
            }
        } describe: { summary in
            AuditedResult(target: summary.snapshotID, details: ["file": summary.file, "entries": String(summary.entries.count), "bytes": String(summary.bytes)])
        }
    }

    /// One line of `SHA256SUMS` as GNU `sha256sum` writes it: a name with a backslash, newline or
    /// carriage return is escaped and the line starts with a backslash, so that `sha256sum -c`
    /// reads every name back exactly.
    static func checksumLine(sha256: String, path: String) -> String {
        guard path.contains(where: { $0 == "\\" || $0 == "\n" || $0 == "\r" }) else { return "\(sha256)  \(path)\n" }
        let escaped = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
        return "\\\(sha256)  \(escaped)\n"
    }

    private func writeExport(snapshot reference: String, to path: String, progress: OperationProgress?) async throws -> ExportSummary {
        let (id, snapshot) = try await repository.findSnapshot(reference)
        let target = Configuration.absolute(path, relativeTo: nil)
        if FileManager.default.fileExists(atPath: target) {
            throw BunkerError(.invalidArgument, "\(target) already exists; remove it or choose another file.")
        }
        let scratch = try configuration.scratchDirectory()
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
        let zip = ZipWriter(fd: fd, path: target)
        var entries: [ExportSummary.Entry] = []
        let reader = ContentReader(loader: repository)

        func add(_ name: String, _ node: Node) async throws {
            try zip.begin(name: name, size: node.size ?? 0, mode: 0o100000 | node.mode, modified: Date(timeIntervalSince1970: Double(node.mtimeNanoseconds) / 1e9))
            progress?.update { $0.currentPath = name }
            try await reader.read(node) { data in
                try zip.write(data)
                progress?.update { $0.bytesDone += UInt64(data.count) }
            }
            try zip.end()
            entries.append(.init(path: name, size: node.size ?? 0, sha256: node.sha256 ?? ""))
        }
        func add(_ name: String, file: String) async throws {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
            defer { try? handle.close() }
            let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.uint64Value ?? 0
            try zip.begin(name: name, size: size, mode: 0o100600, modified: repository.now())
            var hasher = SHA256()
            while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
                hasher.update(data: data)
                try zip.write(data)
            }
            try zip.end()
            entries.append(.init(path: name, size: size, sha256: ID(digest: hasher.finalize()).hex))
        }
        func addTree(_ tree: ID, under prefix: String) async throws {
            for node in try await repository.loadTree(tree).nodes where node.hasSafeName {
                let name = prefix + node.name
                switch node.type {
                case .file: try await add(name, node)
                case .directory:
                    try zip.begin(name: name + "/", size: 0, mode: 0o040000 | node.mode, modified: Date(timeIntervalSince1970: Double(node.mtimeNanoseconds) / 1e9))
                    try zip.end()
                    if let sub = node.subtree { try await addTree(sub, under: name + "/") }
                case .symlink: break
                }
            }
        }

        let root = try await repository.loadTree(snapshot.tree)
        let records = snapshot.sources ?? []
        let databases = records.filter { SourceKind(rawValue: $0.kind)?.isDatabase ?? false }
        for node in root.nodes where node.hasSafeName {
            guard let record = records.first(where: { $0.name == node.name }), let kind = SourceKind(rawValue: record.kind), kind.isDatabase else {
                // A file tree (or a plain path backup): under its name.
                if node.type == .directory, let sub = node.subtree {
                    try await addTree(sub, under: node.name + "/")
                } else if node.type == .file {
                    try await add(node.name, node)
                }
                continue
            }
            let sqlName = databases.count == 1 ? "database.sql" : "\(record.name)/database.sql"
            guard let sub = node.subtree else { continue }
            let tree = try await repository.loadTree(sub)
            let file = record.details?["file"].flatMap { tree.node(named: $0) } ?? tree.nodes.first { $0.type == .file }
            guard let file else { continue }
            switch kind {
            case .postgres:
                try await add(sqlName, file)
            case .sqlite:
                try await add("\(record.name)/\(file.name)", file)
                let copy = scratch + "/export-\(UUID().uuidString.prefix(8).lowercased()).db"
                let dump = copy + ".sql"
                defer {
                    unlink(copy)
                    unlink(dump)
                }
                try await restoreFile(file, to: copy, reader: reader)
                try await SQLiteDump.write(database: copy, to: dump)
                try await add(sqlName, file: dump)
            case .files:
                break
            }
        }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let total = entries.reduce(0) { $0 + $1.size }
        let metadata = ExportMetadata(
            snapshotID: id.hex, time: snapshot.time, hostname: snapshot.hostname, backupType: snapshot.backupType,
            tags: snapshot.tags, description: snapshot.description, sources: records, entries: entries, totalBytes: total,
            tool: "bunker \(bunkerVersion)", exportedAt: repository.now())
        let metadataFile = scratch + "/export-metadata-\(UUID().uuidString.prefix(8)).json"
        defer { unlink(metadataFile) }
        try encoder.encode(metadata).write(to: URL(fileURLWithPath: metadataFile))
        try await add("metadata.json", file: metadataFile)

        let sums = entries.map { Self.checksumLine(sha256: $0.sha256, path: $0.path) }.joined()
        let sumsFile = scratch + "/export-sums-\(UUID().uuidString.prefix(8))"
        defer { unlink(sumsFile) }
        try Data(sums.utf8).write(to: URL(fileURLWithPath: sumsFile))
        try zip.begin(name: "SHA256SUMS", size: UInt64(sums.utf8.count), mode: 0o100644, modified: repository.now())
        try zip.write(Data(sums.utf8))
        try zip.end()
        try zip.finish()

        guard fsync(fd) == 0 else {
            throw BunkerError(.sourceIO, "Cannot flush \(temp): \(String(cString: strerror(errno))).")
        }
        close(fd)
        closed = true
        guard rename(temp, target) == 0 else {
            throw BunkerError(.sourceIO, "Cannot move the archive to \(target): \(String(cString: strerror(errno))).")
        }
        return ExportSummary(snapshotID: id.hex, file: target, entries: entries, bytes: total)
    }

    private func restoreFile(_ node: Node, to path: String, reader: ContentReader) async throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.sourceIO, "Cannot create \(path): \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        try await reader.read(node) { data in
            try data.withUnsafeBytes { buffer in
                var done = 0
                while done < buffer.count {
                    let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw BunkerError(errno == ENOSPC ? .storageFull : .sourceIO, "Cannot write \(path): \(String(cString: strerror(errno))).")
                    }
                    done += n
                }
            }
        }
    }
}
