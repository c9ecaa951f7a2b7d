import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import GRDB

/// A service over a fresh test repository, configured by TOML text written for the test.
func makeService(in dir: String, sources: String, now: @escaping @Sendable () -> Date = { Date() }) async throws -> BunkerService {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let text = """
        data_dir = "\(dir)/data"

        [repository]
        path = "\(dir)/repo"

        \(sources)
        """
    let configuration = try Configuration(text: text, file: dir + "/bunker.toml", environment: [:])
    try text.write(toFile: dir + "/bunker.toml", atomically: true, encoding: .utf8)
    let repository = try await TestRepository.create(at: dir + "/repo", now: now)
    return BunkerService(configuration: configuration, repository: repository)
}

/// Creates an SQLite database with a `patients` table of `rows` rows.
func makeDatabase(at path: String, rows: Int, journalMode: String = "wal") throws {
    let db = try DatabaseQueue(path: path)
    try db.writeWithoutTransaction { db in
        _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = \(journalMode)")
        try db.execute(sql: "CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT NOT NULL, notes TEXT, photo BLOB)")
        try db.execute(sql: "CREATE TABLE visits (id INTEGER PRIMARY KEY, patient INTEGER REFERENCES patients(id), at TEXT)")
    }
    try db.write { db in
        for i in 1...rows {
            try db.execute(sql: "INSERT INTO patients (id, name, notes, photo) VALUES (?, ?, ?, randomblob(200))",
                           arguments: [i, "Patient \(i)", String(repeating: "note \(i) ", count: 20)])
            try db.execute(sql: "INSERT INTO visits (patient, at) VALUES (?, datetime('now'))", arguments: [i])
        }
    }
    try db.close()
}

/// Rows of a table.
func count(_ table: String, in path: String) throws -> Int {
    let db = try DatabaseQueue(path: path)
    defer { try? db.close() }
    return try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM \(table)") ?? -1 }
}

func fileBytes(_ path: String) -> Data? {
    FileManager.default.contents(atPath: path)
}
