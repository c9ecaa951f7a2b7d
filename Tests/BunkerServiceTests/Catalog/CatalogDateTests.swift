@testable import BunkerService
import Foundation
import GRDB
import Testing

/// The catalog writes dates itself (``CatalogDate``), in exactly the text GRDB wrote before, so
/// that rows of either age sort, compare and read back alike.
@Suite struct CatalogDateTests {
    @Test func datesAreWrittenAsGRDBWritesThemToTheMillisecond() {
        var rng = SystemRandomNumberGenerator()
        // Exact half milliseconds (binary fractions) on both sides of 1970: the formatter takes a
        // tie up, towards the later time, before 1970 too.
        var dates = [0.0, 0.0005, 0.999, 1.0, -0.001, -1.5, -86_400.25, 951_782_400.5, 1_733_270_400.123, 4_102_444_799.999,
                     -0.0625, 0.0625, -1_841_851_051.8125, 1_000_000_000.0625, -2_000_000_000.4375]
            .map { Date(timeIntervalSince1970: $0) }
        for _ in 0..<2_000 {
            dates.append(Date(timeIntervalSince1970: Double.random(in: -2_000_000_000...4_000_000_000, using: &rng)))
        }
        // Whole milliseconds, as the clock of a test or a record read back gives them.
        for _ in 0..<500 {
            dates.append(Date(timeIntervalSince1970: Double(Int64.random(in: 0...4_000_000_000_000, using: &rng)) / 1000))
        }
        for date in dates {
            let grdb = String.fromDatabaseValue(date.databaseValue)
            #expect(CatalogDate.text(date) == grdb, "\(date.timeIntervalSince1970)")
        }
    }

    @Test func writtenDatesReadBackThroughGRDB() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (at TEXT)")
            for seconds in [0.0, 1_733_270_400.123, -1.5] {
                try db.execute(sql: "INSERT INTO t VALUES (?)", arguments: [CatalogDate.text(Date(timeIntervalSince1970: seconds))])
                let back = try #require(try Date.fetchOne(db, sql: "SELECT at FROM t ORDER BY rowid DESC LIMIT 1"))
                #expect(abs(back.timeIntervalSince1970 - seconds) < 0.0005)
            }
        }
    }
}
