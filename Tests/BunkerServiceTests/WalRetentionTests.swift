import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// Which archived WAL cleanup and prune remove: everything before the oldest kept base backup,
/// or with `[source.wal] pitr_days`, before the newest base backup that ended before the window.
@Suite struct WalRetentionTests {
    /// Base backups A, B and C, ended 60, 40 and 1 days ago, starting at segments 2, 5 and 8 of
    /// nine archived ones; prunes, and hands `check` what the prune reported and the archive.
    func prune(pitrDays: Int?, _ check: (Int, WalArchive) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeService(in: dir, sources: """
                [[source]]
                name = "clinic"
                kind = "postgres"
                method = "physical"
                host = "/var/run/postgresql"
                user = "backup"
                \(pitrDays.map { "[source.wal]\npitr_days = \($0)" } ?? "")
                """)
            let archive = WalArchive(repository: service.repository, source: "clinic")
            for number in 1...9 {
                _ = try await archive.push(FakeWal.segmentName(number), contents: FakeWal.segment(number: number))
            }
            let forge = SnapshotForge(service.repository)
            for (start, daysAgo) in [(2, 60), (5, 40), (8, 1)] {
                let record = SnapshotSource(name: "clinic", kind: "postgres", origin: "postgres://forged", details: [
                    "method": "physical", "start_wal_file": FakeWal.segmentName(start),
                    "stop_time": Timestamp.format(Date().addingTimeInterval(-Double(daysAgo) * 86400)),
                ])
                try await forge.snapshot([try await forge.directory(Array("clinic".utf8), [])], sources: [record])
            }
            let report = try await service.prune(PruneOptions())
            try await check(report.walFilesRemoved, archive)
        }
    }

    @Test func walBeforeTheOldestKeptBaseBackupGoes() async throws {
        try await prune(pitrDays: nil) { (removed: Int, archive: WalArchive) async throws in
            #expect(removed == 1, "only segment 1 comes before base backup A")
            let (gone, kept) = (try await archive.fetch(FakeWal.segmentName(1)), try await archive.fetch(FakeWal.segmentName(2)))
            #expect(gone == nil)
            #expect(kept == FakeWal.segment(number: 2))
        }
    }

    @Test func aPitrWindowKeepsWalFromTheBaseBackupItStartsWith() async throws {
        try await prune(pitrDays: 30) { (removed: Int, archive: WalArchive) async throws in
            // The window's earliest moment (30 days ago) is restored from B, ended 40 days ago.
            #expect(removed == 4, "segments 1 to 4 come before base backup B")
            let (gone, kept) = (try await archive.fetch(FakeWal.segmentName(4)), try await archive.fetch(FakeWal.segmentName(5)))
            #expect(gone == nil)
            #expect(kept == FakeWal.segment(number: 5))
        }
    }
}
