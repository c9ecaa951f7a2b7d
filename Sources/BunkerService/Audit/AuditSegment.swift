import BunkerCore
import Foundation
import GRDB

/// One shipped piece of a data directory's audit trail, sealed in the repository (object kind
/// `catalog`), so that the repository alone, or a copy of it, brings the trail back on a new
/// machine (`bunker catalog restore`).
///
/// A segment holds rows `firstSeq...lastSeq` exactly as written (hashes and MACs), the lines of
/// `audit-anchors.log` that came after the previous segment's, up to the one that anchors
/// `lastSeq`, and the audit key, which signs both: the repository's own encryption keeps it as
/// secret as the backups. It also carries the users as they were when it was shipped, so that
/// the people named in the trail can log in again after a recovery.
///
/// Segments are named `<installation>-<first seq>-<last seq>` (seqs as 12 digits): several
/// hosts that share a repository each ship their own trail, and a segment is never rewritten.
struct AuditSegment: Codable, Sendable {
    static let format = "bunker-audit-segment-v1"

    var format = AuditSegment.format
    /// The data directory the trail belongs to (its `installation` file).
    var installation: String
    var host: String
    var shippedAt: String
    var firstSeq: Int64
    var lastSeq: Int64
    /// The index (from 0) in the anchor file of `anchorLines`' first line.
    var anchorFrom: Int
    var anchorLines: [String]
    /// The audit key as its file holds it (64 hex digits).
    var auditKey: String
    var rows: [AuditRecord]
    var users: [UserRecord]

    enum CodingKeys: String, CodingKey {
        case format, installation, host, rows, users
        case shippedAt = "shipped_at"
        case firstSeq = "first_seq"
        case lastSeq = "last_seq"
        case anchorFrom = "anchor_from"
        case anchorLines = "anchor_lines"
        case auditKey = "audit_key"
    }

    /// The object name of the segment of `installation` holding `first...last`.
    static func name(installation: String, first: Int64, last: Int64) -> String {
        "\(installation)-\(String(format: "%012lld", first))-\(String(format: "%012lld", last))"
    }

    /// The installation and seq range an object name says, or nil for another name.
    static func parse(name: String) -> (installation: String, first: Int64, last: Int64)? {
        let parts = name.split(separator: "-")
        guard parts.count >= 3, let first = Int64(parts[parts.count - 2]), let last = Int64(parts[parts.count - 1]), first <= last else { return nil }
        return (parts.dropLast(2).joined(separator: "-"), first, last)
    }
}

/// How far a data directory's trail has been shipped: the last row, and how many anchor lines.
struct AuditShippedMark: Codable, Sendable, Equatable {
    var lastSeq: Int64
    var anchorLines: Int

    enum CodingKeys: String, CodingKey {
        case lastSeq = "last_seq"
        case anchorLines = "anchor_lines"
    }
}

extension Catalog {
    /// The data directory's installation id, made on first use: names its shipped segments.
    func installationID() throws -> String {
        let file = dataDirectory + "/installation"
        if let text = try? String(contentsOfFile: file, encoding: .utf8) {
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        let id = UUID().uuidString.lowercased()
        try SecretFile.write(id + "\n", to: file, flags: O_TRUNC, naming: "the installation id")
        return id
    }

    /// The segment that follows `mark`: every row after it up to the last anchored one, with the
    /// anchor lines since; nil when nothing new is anchored.
    func auditSegment(after mark: AuditShippedMark, installation: String) throws -> AuditSegment? {
        let lines = try anchor.rawLines()
        guard lines.count > mark.anchorLines, let anchored = lines.last.flatMap(AuditAnchor.seq(of:)), anchored > mark.lastSeq else { return nil }
        let (rows, users) = try queue.read { db in
            (try AuditRecord.filter(Column("seq") > mark.lastSeq && Column("seq") <= anchored).order(Column("seq")).fetchAll(db),
             try UserRecord.order(Column("id")).fetchAll(db))
        }
        guard let first = rows.first, first.seq == mark.lastSeq + 1, rows.last?.seq == anchored else {
            throw BunkerError(.auditTampered, "The audit trail has a gap after row \(mark.lastSeq); run `bunker audit verify`.")
        }
        let key = try String(contentsOfFile: anchor.keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return AuditSegment(
            installation: installation, host: HostIdentity.name, shippedAt: Timestamp.format(options.now()),
            firstSeq: first.seq, lastSeq: anchored, anchorFrom: mark.anchorLines, anchorLines: Array(lines[mark.anchorLines...]),
            auditKey: key, rows: rows, users: users)
    }

    /// Rebuilds an empty data directory's trail from shipped segments (in order, contiguous):
    /// the audit key, the anchor file and its head, the rows as written, and the users of the
    /// last segment. Refuses a data directory that already has a trail or a key.
    static func restoreTrail(dataDirectory: String, from segments: [AuditSegment], options: Options = Options()) throws -> Catalog {
        guard let last = segments.last else {
            throw BunkerError(.invalidArgument, "The repository holds no audit trail to restore.")
        }
        let keyFile = options.auditKeyFile ?? dataDirectory + "/audit.key"
        for file in [keyFile, dataDirectory + "/audit-anchors.log", dataDirectory + "/catalog.sqlite"] where FileManager.default.fileExists(atPath: file) {
            throw BunkerError(.invalidArgument, "\(file) exists: the data directory \(dataDirectory) already has a catalog. Restore into a new, empty data directory (set BUNKER_DATA_DIR or data_dir).")
        }
        var expectedSeq: Int64 = 1
        var expectedLine = 0
        var lines: [String] = []
        for segment in segments {
            guard segment.format == AuditSegment.format else {
                throw BunkerError(.unsupportedFormat, "An audit segment has format \(segment.format), which this version of Bunker cannot read; upgrade Bunker.")
            }
            guard segment.firstSeq == expectedSeq, segment.anchorFrom == expectedLine, segment.auditKey == last.auditKey else {
                throw BunkerError(.auditTampered, "The shipped audit trail of installation \(segment.installation) is not contiguous: a segment starting at row \(segment.firstSeq) follows row \(expectedSeq - 1). A segment is missing or was altered in the repository.")
            }
            guard segment.rows.map(\.seq) == Array(segment.firstSeq...segment.lastSeq) else {
                throw BunkerError(.auditTampered, "The audit segment of rows \(segment.firstSeq)–\(segment.lastSeq) does not hold exactly those rows; it was altered in the repository.")
            }
            expectedSeq = segment.lastSeq + 1
            expectedLine += segment.anchorLines.count
            lines += segment.anchorLines
        }
        guard let key = ID(hex: last.auditKey) else {
            throw BunkerError(.auditTampered, "The shipped audit key is damaged.")
        }
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try SecretFile.write(key.hex + "\n", to: keyFile, flags: O_EXCL, naming: "the audit key")
        try SecretFile.write(lines.map { $0 + "\n" }.joined(), to: dataDirectory + "/audit-anchors.log", flags: O_EXCL, naming: "the audit anchor file")
        // The new machine continues the trail under an installation id of its own: the old
        // machine may still be there (a recovery drill) and ship its own rows after these under
        // the old id. Sharing it, both would name their next segments alike, and each would
        // take the other's for its own: the trail in the repository would fork unnoticed.
        try SecretFile.write(UUID().uuidString.lowercased() + "\n", to: dataDirectory + "/installation", flags: O_TRUNC, naming: "the installation id")
        let catalog = try Catalog(dataDirectory: dataDirectory, options: options)
        try catalog.anchor.rewriteHead()
        try catalog.queue.write { db in
            for segment in segments {
                for row in segment.rows { try row.insert(db) }
            }
            for var user in last.users { try user.insert(db) }
        }
        // Nothing is shipped under the new id yet: the whole trail goes, the recovered rows first.
        try catalog.saveShippedMark(AuditShippedMark(lastSeq: 0, anchorLines: 0))
        return catalog
    }

    /// Where the shipped mark is kept: beside the catalog, so that a lost data directory simply
    /// ships from the repository's own last segment.
    var shippedMarkFile: String { dataDirectory + "/audit-shipped.json" }

    func shippedMark() -> AuditShippedMark? {
        guard let data = FileManager.default.contents(atPath: shippedMarkFile) else { return nil }
        return try? JSONDecoder().decode(AuditShippedMark.self, from: data)
    }

    func saveShippedMark(_ mark: AuditShippedMark) throws {
        let temp = shippedMarkFile + ".tmp"
        unlink(temp)
        try SecretFile.write(String(decoding: try JSONEncoder().encode(mark), as: UTF8.self), to: temp, flags: O_EXCL, naming: "the audit shipping mark")
        guard rename(temp, shippedMarkFile) == 0 else {
            throw BunkerError(.catalog, "Cannot replace \(shippedMarkFile): \(String(cString: strerror(errno))).")
        }
    }
}
