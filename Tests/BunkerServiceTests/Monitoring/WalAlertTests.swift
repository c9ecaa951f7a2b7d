import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// A postgres source's archived WAL in health and alerts: a gap, and no WAL archived for longer
/// than `[notifications] wal_archive_lag_minutes`.
@Suite struct WalAlertTests {
    @Test func aGapAndALagDegradeHealthAndAreAlertedOnce() async throws {
        try await withTemporaryDirectory { dir in
            let clock = ManualClock(Date())
            let service = try await makeService(in: dir, sources: """
                [notifications]
                wal_archive_lag_minutes = 30

                [[source]]
                name = "clinic"
                kind = "postgres"
                method = "physical"
                host = "/var/run/postgresql"
                user = "backup"
                """, now: { clock.now })
            let archive = WalArchive(repository: service.repository, source: "clinic")
            for number in [1, 2, 4] {
                _ = try await archive.push(FakeWal.segmentName(number), contents: FakeWal.segment(number: number))
            }
            clock.set(Date())
            let walKinds: Set<NotificationEvent.Kind> = [.walArchiveGap, .walArchiveLag]

            var health = await service.healthDetail()
            #expect(health.status == "degraded")
            #expect(health.problems.contains("WAL of clinic has 1 segments missing from the archive (first \(FakeWal.segmentName(3))): take a new base backup"), "\(health.problems)")
            #expect(!health.problems.contains { $0.hasPrefix("no WAL of clinic archived") }, "\(health.problems)")
            var alerts = await service.checkAlerts().filter { walKinds.contains($0.kind) }
            #expect(alerts.map(\.kind) == [.walArchiveGap])
            #expect(alerts.first?.fact("First missing") == FakeWal.segmentName(3))

            clock.advance(by: 31 * 60)
            health = await service.healthDetail()
            #expect(health.problems.contains { $0.hasPrefix("no WAL of clinic archived for 31 minutes (threshold 30)") }, "\(health.problems)")
            alerts = await service.checkAlerts().filter { walKinds.contains($0.kind) }
            #expect(alerts.map(\.kind) == [.walArchiveLag], "the gap was told about already")
            #expect(await service.checkAlerts().filter { walKinds.contains($0.kind) }.isEmpty, "once per episode")
            let rows = try service.catalog().auditRecords(AuditFilter(action: "alert"))
            #expect(Set(rows.compactMap(\.target)).isSuperset(of: ["wal_archive_gap", "wal_archive_lag"]))
        }
    }
}
