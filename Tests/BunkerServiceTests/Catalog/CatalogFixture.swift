import BunkerCore
import BunkerService
import BunkerTesting
import Crypto
import Foundation
import Synchronization
import Testing

/// A clock that tests move by hand.
final class TestClock: Sendable {
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        current = Mutex(start)
    }

    var now: Date { current.withLock { $0 } }

    func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}

/// Options for a test catalog: a cheap bcrypt cost and, if given, a hand-moved clock.
func testCatalogOptions(clock: TestClock? = nil) -> Catalog.Options {
    var options = Catalog.Options()
    options.bcryptCost = 4
    if let clock { options.now = { clock.now } }
    return options
}

/// The actor of test changes.
let testAdmin = AuditActor(name: "test-admin", channel: .cli)

/// A catalog in a fresh data directory under `dir`.
func makeCatalog(in dir: String, clock: TestClock? = nil) throws -> Catalog {
    try Catalog(dataDirectory: dir + "/data", options: testCatalogOptions(clock: clock))
}

/// A catalog holding five audit rows: five users added.
func makeCatalogWithFiveRows(in dir: String) throws -> Catalog {
    let catalog = try makeCatalog(in: dir)
    for name in ["ann", "bob", "cid", "dee", "eve"] {
        try catalog.addUser(NewUser(username: name, fullName: name.capitalized, role: .viewer, password: "password-\(name)"), by: testAdmin)
    }
    return catalog
}

/// Runs SQL with the real `sqlite3` tool, as someone with a shell on the server would.
@discardableResult
func sqlite3(_ database: String, _ sql: String) throws -> (status: Int32, output: String) {
    try shell("sqlite3 '\(database)' <<'SQL'\n\(sql)\nSQL")
}

/// Deletes the audit rows from `seq` on with sqlite3, as someone with a shell would, and
/// returns what verification then says.
func verifyAfterRemovingAuditRows(from seq: Int64, of catalog: Catalog) throws -> AuditVerification {
    let cut = try sqlite3(catalog.path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq >= \(seq);")
    #expect(cut.status == 0, "\(cut.output)")
    return try catalog.verifyAudit()
}

/// The pid of a process that has exited: it stands for one that crashed.
func exitedProcessID() throws -> Int32 {
    let exited = Process()
    exited.executableURL = URL(fileURLWithPath: "/bin/true")
    try exited.run()
    exited.waitUntilExit()
    return exited.processIdentifier
}

/// Rewrites the lines of `<dir>/data/audit-anchors.log`.
func rewriteAnchorLines(in dir: String, _ change: (inout [Substring]) -> Void) throws {
    let file = dir + "/data/audit-anchors.log"
    var lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
    change(&lines)
    try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
}

/// The audit key of the data directory under `dir`.
func auditKey(in dir: String) throws -> SymmetricKey {
    let hex = try String(contentsOfFile: dir + "/data/audit.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    let bytes = stride(from: 0, to: hex.count, by: 2).map { offset -> UInt8 in
        let start = hex.index(hex.startIndex, offsetBy: offset)
        return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
    }
    return SymmetricKey(data: bytes)
}

func hmacHex(_ message: String, key: SymmetricKey) -> String {
    ID(digest: HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)).hex
}

/// A row's MAC as docs/audit-trail.md defines it.
func rowMAC(_ row: AuditRecord, key: SymmetricKey) -> String {
    hmacHex("bunker-audit-row-v1 \(row.hash)", key: key)
}

/// Five audit rows as a Bunker before MACs left them: no `mac` column (nor its migration), and
/// `v2` anchor lines, signed with the data directory's key, that name no start of MACs.
func makeCatalogWithFiveRowsOfABunkerBeforeMACs(in dir: String) throws -> Catalog {
    let catalog = try makeCatalogWithFiveRows(in: dir)
    let run = try sqlite3(catalog.path, """
        DROP TRIGGER audit_mac_required;
        ALTER TABLE audit DROP COLUMN mac;
        DELETE FROM grdb_migrations WHERE identifier = 'v3-audit-mac';
        """)
    #expect(run.status == 0 && run.output.isEmpty, "sqlite3: \(run.output)")
    let key = try auditKey(in: dir)
    var previous = String(repeating: "0", count: 64)
    var last = (seq: "", mac: "")
    try rewriteAnchorLines(in: dir) { lines in
        lines = lines.map { line in
            let parts = line.split(separator: " ")
            let mac = hmacHex("bunker-audit-anchor-v2 \(parts[1]) \(parts[2]) \(parts[3]) \(previous)", key: key)
            previous = mac
            last = (String(parts[1]), mac)
            return Substring("v2 \(parts[1]) \(parts[2]) \(parts[3]) \(mac)")
        }
    }
    let head = "v2 \(last.seq) \(last.mac) \(hmacHex("bunker-audit-head-v2 \(last.seq) \(last.mac)", key: key))\n"
    try head.write(toFile: dir + "/data/audit-anchors.head", atomically: true, encoding: .utf8)
    return try makeCatalogReadOnly(in: dir)
}

/// The catalog under `dir`, opened read-only (no migration, no anchor written).
func makeCatalogReadOnly(in dir: String) throws -> Catalog {
    var options = testCatalogOptions()
    options.readOnly = true
    return try Catalog(dataDirectory: dir + "/data", options: options)
}
