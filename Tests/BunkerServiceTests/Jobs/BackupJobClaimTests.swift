import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// How long a backup job keeps the one-writer claim.
@Suite struct BackupJobClaimTests {
    /// After its snapshot is committed, a backup works out the ZIP checksum of the Clinical
    /// Dashboard API by reading the whole backup. It holds the claim no longer: a cleanup asked
    /// for meanwhile runs at once instead of being told "busy" by a job that shows as succeeded.
    @Test func aBackupWorkingOutItsZIPChecksumLetsTheNextWriterRun() async throws {
        try await withTemporaryDirectory { dir in
            try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 4 << 20)
            let made = try await makeService(in: dir + "/bunker", sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            // Every pack read takes a while, so that the checksum's reading lasts long enough to
            // be seen; the backup itself reads no pack.
            let slow = LoadCountingStorage(try StorageLocation.storage(for: dir + "/bunker/repo"), delay: .milliseconds(100))
            let repository = try await Repository.open(storage: slow, password: TestRepository.password)
            let service = BunkerService(configuration: made.configuration, repository: repository)

            let options = JobOptions("a backup by alice", access: .writes)
            async let backup = service.jobs.run(options) {
                try await service.backup(SourceBackupRequest(), by: .system, progress: options.progress)
            }
            var checksumming = false
            for _ in 0..<2000 where !checksumming {
                checksumming = options.progress.counters.currentPath == "ZIP checksum"
                if !checksumming { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(checksumming, "the backup never reached its ZIP checksum")
            let job = try #require(try service.catalog().jobs().first { $0.kind == "backup" })
            #expect(job.state == .succeeded)
            let ran = try await service.jobs.run(JobOptions("a cleanup by bob", access: .writes)) { true }
            #expect(ran)

            let result = try await backup
            let record = try #require(try service.catalog().backup(id: result.snapshotID.hex))
            #expect(service.archiveChecksum(of: record) != nil, "the checksum was still worked out")
        }
    }
}
