import BunkerService
import BunkerTesting
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
let testAdmin = Actor(name: "test-admin", channel: .cli)

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
