import BunkerCore
import BunkerSources
import Crypto
import Foundation

/// Writes the entries of one export archive, front to back: the names (``ExportNames``), the
/// checksums every entry gets in `SHA256SUMS`, and the links listed in `metadata.json`.
/// Sources fill their part through a ``SourcePlace``; used by one task at a time.
final class ExportWriter {
    let zip: ZipWriter
    private let repository: Repository
    private let reader: ContentReader
    private let progress: OperationProgress?
    /// The modification time of the entries Bunker makes (the SQL text, `metadata.json`,
    /// `SHA256SUMS`): the snapshot's time, never the export's, so that the same snapshot always
    /// gives the same archive.
    private let madeAt: Date
    /// Makes (or finds) the scratch directory; asked only by a source that writes a file first.
    private let scratch: () throws -> String
    var names = ExportNames()
    var entries: [ExportSummary.Entry] = []
    var symlinks: [ExportSummary.Symlink] = []
    /// `database.sql` at the top, claimed when the snapshot holds exactly one database.
    var topSQL: String?

    init(zip: ZipWriter, repository: Repository, madeAt: Date, progress: OperationProgress?, scratch: @escaping () throws -> String) {
        self.zip = zip
        self.madeAt = madeAt
        self.repository = repository
        self.reader = ContentReader(loader: repository)
        self.progress = progress
        self.scratch = scratch
    }

    /// One source's part of the archive: its directory, named by the source, claimed when first
    /// used, and its SQL.
    struct SourcePlace: SourceExportArchive {
        let writer: ExportWriter
        /// The source's name (its directory's name in the snapshot).
        let name: String

        var loader: any BlobLoader { writer.repository }

        func scratchDirectory() throws -> String {
            try writer.scratch()
        }

        func addTree(_ node: Node) async throws {
            try await writer.addNode(node, under: nil, originalParent: nil)
        }

        func addFile(_ file: Node) async throws {
            let fileName = ExportNames.name(of: file)
            try await writer.add(writer.names.claim(fileName, under: directory(), original: name + "/" + fileName), file)
        }

        func addSQL(_ file: Node) async throws {
            try await writer.add(sqlName(), file)
        }

        func addSQL(contentsOf path: String) async throws {
            try await writer.add(sqlName(), file: path)
        }

        private func directory() -> String {
            if let claimed = writer.sourceDirectories[name] { return claimed }
            let claimed = writer.names.claim(name, under: nil, original: name)
            writer.sourceDirectories[name] = claimed
            return claimed
        }

        private func sqlName() -> String {
            writer.topSQL ?? writer.names.claim("database.sql", under: directory(), original: name + "/database.sql")
        }
    }

    /// The archive directories claimed for sources, by source name.
    private var sourceDirectories: [String: String] = [:]

    private func modified(_ node: Node) -> Date {
        Date(timeIntervalSince1970: Double(node.mtimeNanoseconds) / 1e9)
    }

    /// A stored file, streamed through its SHA-256 check.
    func add(_ name: String, _ node: Node) async throws {
        try await zip.begin(name: name, size: node.size ?? 0, mode: 0o100000 | node.mode, modified: modified(node), compressible: true)
        progress?.update { $0.currentPath = name }
        try await reader.read(node) { data in
            try await zip.write(data)
            progress?.update { $0.bytesDone += UInt64(data.count) }
        }
        try await zip.end()
        entries.append(.init(path: name, size: node.size ?? 0, sha256: node.sha256 ?? ""))
    }

    /// A local file made for the export (an SQLite database's SQL text).
    func add(_ name: String, file: String) async throws {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        defer { try? handle.close() }
        let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.uint64Value ?? 0
        try await zip.begin(name: name, size: size, mode: 0o100600, modified: madeAt, compressible: true)
        var hasher = SHA256()
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            hasher.update(data: data)
            try await zip.write(data)
        }
        try await zip.end()
        entries.append(.init(path: name, size: size, sha256: ID(digest: hasher.finalize()).hex))
    }

    /// Bunker's own bytes (`metadata.json`, `SHA256SUMS`); not an entry of the checksums.
    func add(_ name: String, bytes: Data) async throws {
        try await zip.begin(name: name, size: UInt64(bytes.count), mode: 0o100644, modified: madeAt, compressible: true)
        try await zip.write(bytes)
        try await zip.end()
    }

    private func addLink(_ name: String, _ node: Node) async throws {
        let target = node.linkTarget ?? ""
        let bytes = Data(node.linkTargetBytes ?? [])
        try await zip.begin(name: name, size: UInt64(bytes.count), mode: 0o120000 | (node.mode & 0o7777), modified: modified(node))
        try await zip.write(bytes)
        try await zip.end()
        symlinks.append(.init(path: name, target: target))
    }

    /// A tree entry: a file, a directory (and what it holds) or a link.
    func addNode(_ node: Node, under parent: String?, originalParent: String?) async throws {
        let original = (originalParent.map { $0 + "/" } ?? "") + ExportNames.name(of: node)
        let name = names.claim(ExportNames.name(of: node), under: parent, original: original)
        switch node.type {
        case .file:
            try await add(name, node)
        case .symlink:
            try await addLink(name, node)
        case .fifo, .socket, .characterDevice, .blockDevice:
            // A ZIP holds no special files; the snapshot keeps them for a restore.
            break
        case .directory:
            try await zip.begin(name: name + "/", size: 0, mode: 0o040000 | node.mode, modified: modified(node))
            try await zip.end()
            guard let sub = node.subtree else { return }
            for child in try await repository.loadTree(sub).nodes where child.hasSafeName {
                try await addNode(child, under: name, originalParent: original)
            }
        }
    }
}
