import BunkerCore
import Foundation
import GRDB

/// Which audit rows to list.
public struct AuditFilter: Sendable {
    /// An action (`backup`), or a family of them (`user` matches `user.add`, `user.role`, …).
    public var action: String?
    public var actor: String?
    public var since: Date?
    public var until: Date?
    /// Rows after this seq (the paging cursor).
    public var afterSeq: Int64?
    public var limit = 100

    public init(action: String? = nil, actor: String? = nil, since: Date? = nil, until: Date? = nil, afterSeq: Int64? = nil, limit: Int = 100) {
        self.action = action
        self.actor = actor
        self.since = since
        self.until = until
        self.afterSeq = afterSeq
        self.limit = limit
    }
}

/// The result of checking the audit trail.
public struct AuditVerification: Sendable, Codable {
    public var ok: Bool
    public var rows: Int
    public var headSeq: Int64?
    public var headHash: String?
    public var anchors: Int
    /// The first row that is not as written (altered, inserted, or the first after removed ones).
    public var firstBadSeq: Int64?
    /// What is wrong and what to do, when not ok.
    public var problem: String?

    enum CodingKeys: String, CodingKey {
        case ok, rows, anchors, problem
        case headSeq = "head_seq"
        case headHash = "head_hash"
        case firstBadSeq = "first_bad_seq"
    }
}

/// The formats `bunker audit export` (and the API's export) write.
public enum AuditExportFormat: String, Sendable, CaseIterable {
    case jsonl, csv

    /// The first line, before any row (CSV's column names).
    public var header: String? {
        switch self {
        case .jsonl: return nil
        case .csv: return "seq,timestamp,actor,action,target,outcome,reason,request_id,details,operation_seq,prev_hash,hash,mac\r\n"
        }
    }

    /// One row as a line, with its line ending.
    public func line(_ row: AuditRecord) throws -> String {
        switch self {
        case .jsonl:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(row), as: UTF8.self) + "\n"
        case .csv:
            let values: [String?] = [
                String(row.seq), row.timestamp, row.actor, row.action, row.target, row.outcome.rawValue, row.reason,
                row.requestID, row.details, row.operationSeq.map(String.init), row.prevHash, row.hash, row.mac,
            ]
            return values.map { Self.csvField($0 ?? "") }.joined(separator: ",") + "\r\n"
        }
    }

    /// RFC 4180 quoting; a leading =, +, - or @ is prefixed with ' so that a spreadsheet does not
    /// run it as a formula.
    static func csvField(_ value: String) -> String {
        var text = value
        if let first = text.first, "=+-@".contains(first), Int(text) == nil { text = "'" + text }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension Catalog {
    /// Audit rows matching `filter`, oldest first, at most `filter.limit`.
    public func auditRecords(_ filter: AuditFilter = AuditFilter()) throws -> [AuditRecord] {
        try queue.read { db in
            var request = AuditRecord.order(Column("seq"))
            if let action = filter.action {
                request = request.filter(Column("action") == action || Column("action").like(action + ".%"))
            }
            if let actor = filter.actor { request = request.filter(Column("actor") == actor) }
            if let since = filter.since { request = request.filter(Column("timestamp") >= Timestamp.format(since)) }
            if let until = filter.until { request = request.filter(Column("timestamp") < Timestamp.format(until)) }
            if let after = filter.afterSeq { request = request.filter(Column("seq") > after) }
            return try request.limit(max(1, filter.limit)).fetchAll(db)
        }
    }

    /// Writes every audit row, oldest first, as JSON lines or CSV, streaming from the database.
    public func exportAudit(format: AuditExportFormat, to write: (String) throws -> Void) throws {
        if let header = format.header { try write(header) }
        try queue.read { db in
            let rows = try AuditRecord.order(Column("seq")).fetchCursor(db)
            while let row = try rows.next() { try write(try format.line(row)) }
        }
    }

    /// Records a refused request (a role without the permission): one `denied` row.
    public func recordDenied(_ action: String, target: String?, reason: String, by actor: AuditActor) throws {
        _ = try write { db in
            try append(AuditEntry(action: action, target: target, outcome: .denied, reason: reason), by: actor, in: db)
        }
    }

    /// Checks the whole audit trail: the sequence has no gap, every row's hash covers its content
    /// and the previous row's hash, every row from the first one Bunker signed on carries the
    /// audit key's MAC, every signed anchor matches the row it names, and the anchor file ends
    /// where its signed head says.
    ///
    /// Reports the first problem found, chain before anchors: the chain and the MACs name the
    /// exact row; the anchors catch what they cannot, a chain rewritten with recomputed hashes or
    /// cut short at its end.
    public func verifyAudit() throws -> AuditVerification {
        let anchorLines = try anchor.lines()
        let anchored = Dictionary((anchorLines ?? []).filter(\.signed).map { ($0.seq, $0) }, uniquingKeysWith: { first, _ in first })
        // Where MACs start, as the signed anchors say; without such an anchor (a trail of an
        // older Bunker, or anchors lost), from the first row that has one.
        let macFrom = anchorLines?.first { $0.signed && $0.macFrom != nil }?.macFrom
        var result = AuditVerification(ok: true, rows: 0, anchors: anchorLines?.count ?? 0)
        var anchoredHashes: [Int64: String] = [:]

        func fail(_ seq: Int64?, _ message: String) -> AuditVerification {
            result.ok = false
            result.firstBadSeq = seq
            result.problem = message
            return result
        }

        try queue.read { db in
            let rows = try AuditRecord.order(Column("seq")).fetchCursor(db)
            var expected: Int64 = 1
            var previous = AuditRecord.genesisHash
            var macsStarted = false
            while let row = try rows.next() {
                result.rows += 1
                if row.computedHash(previous: row.prevHash) != row.hash {
                    result = fail(row.seq, "Audit row \(row.seq) is not the row that was written: its content no longer matches its hash (it was altered, or inserted by hand).")
                    return
                }
                if row.seq != expected {
                    let missing = row.seq - 1 == expected ? "row \(expected) is" : "rows \(expected) to \(row.seq - 1) are"
                    result = fail(row.seq, "Audit \(missing) missing: removed from the trail before row \(row.seq).")
                    return
                }
                if row.prevHash != previous {
                    result = fail(row.seq, "Audit row \(row.seq) does not chain to row \(row.seq - 1): a row was inserted or replaced here, or row \(row.seq - 1) was.")
                    return
                }
                macsStarted = macsStarted || row.mac != nil || macFrom.map { row.seq >= $0 } ?? false
                if macsStarted, row.mac != row.computedMAC(key: anchor.key) {
                    let what = row.mac == nil ? "carries no MAC" : "carries a MAC that is not the audit key's"
                    result = fail(row.seq, "Audit row \(row.seq) \(what): it was not written by Bunker but added to the catalog by someone without the audit key (\(anchor.keyFile)).")
                    return
                }
                if anchored[row.seq] != nil { anchoredHashes[row.seq] = row.hash }
                result.headSeq = row.seq
                result.headHash = row.hash
                previous = row.hash
                expected += 1
            }
        }
        if !result.ok { return result }

        guard let anchorLines else {
            if result.rows == 0 { return result }
            return fail(nil, "The audit anchor file \(anchor.file) is missing, so a rewritten trail cannot be ruled out; restore it from a backup of the data directory.")
        }
        if let forged = anchorLines.first(where: { !$0.signed }) {
            return fail(nil, "Line \(forged.number) of \(anchor.file) is not signed with this data directory's audit key, or does not chain to the line before it: the anchor file (or \(anchor.keyFile)) was edited, cut or replaced.")
        }
        var lastGood: Int64 = 0
        for line in anchorLines.sorted(by: { $0.seq < $1.seq }) {
            guard let hash = anchoredHashes[line.seq] else {
                return fail((result.headSeq ?? 0) + 1, "The audit trail ends at row \(result.headSeq ?? 0), but an anchor signed at \(line.timestamp) names row \(line.seq): the rows after \(result.headSeq ?? 0) were removed.")
            }
            if hash != line.hash {
                return fail(lastGood + 1, "The audit trail was rewritten: row \(line.seq) no longer has the hash signed in the anchor of \(line.timestamp), although every hash was recomputed. The rewrite starts after row \(lastGood) and at or before row \(line.seq).")
            }
            lastGood = line.seq
        }
        // Chained lines are named by the signed head file: a file cut short (with the rows it
        // anchored) ends before the line the head names.
        if anchorLines.contains(where: \.chained) {
            let last = anchorLines[anchorLines.count - 1]
            guard let head = try anchor.headLine() else {
                return fail(nil, "The audit anchor head \(anchor.headFile) is missing, so a trail cut short together with \(anchor.file) cannot be ruled out; restore it from a backup of the data directory.")
            }
            guard head.signed else {
                return fail(nil, "The audit anchor head \(anchor.headFile) is not signed with this data directory's audit key: it was edited or replaced.")
            }
            guard head.mac == last.mac, head.seq == last.seq else {
                return fail((result.headSeq ?? 0) + 1, "The audit anchor file \(anchor.file) was cut short: it ends at an anchor of row \(last.seq), but its signed head names a later anchor of row \(head.seq); the rows after \(result.headSeq ?? 0) were removed with it.")
            }
        }
        return result
    }
}
