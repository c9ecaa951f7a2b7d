import BunkerService
import BunkerTesting
import Foundation
import Synchronization

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
