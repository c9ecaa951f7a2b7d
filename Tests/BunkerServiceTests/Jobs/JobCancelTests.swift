import BunkerCore
import BunkerService
import BunkerTesting
import Foundation
import Testing

/// Cancelling a running job: the operation stops at a safe point, says so in its end row, and
/// leaves the repository as a kill would.
@Suite struct JobCancelTests {
    @Test func aCancelledBackupEndsCancelledTheRepositoryVerifiesAndTheNextBackupCompletes() async throws {
        try await withTemporaryDirectory { dir in
            // A large file, so that the backup is still storing data when it is cancelled.
            try TreeGenerator.makeSampleTree(at: dir + "/studies", largeFileSize: 96 << 20)
            let service = try await makeService(in: dir + "/bunker", sources: """
                [[source]]
                name = "studies"
                kind = "files"
                path = "\(dir)/studies"
                """)
            let options = JobOptions("a backup by the test", access: .writes)
            async let backup = service.jobs.run(options) {
                try await service.backup(SourceBackupRequest(), by: .system, progress: options.progress)
            }
            var jobID: String?
            for _ in 0..<3000 where jobID == nil {
                if let id = service.jobs.running().first?.jobID, options.progress.counters.bytesDone > 0 { jobID = id }
                try await Task.sleep(for: .milliseconds(10))
            }
            let id = try #require(jobID)
            try service.cancelJob(id, by: .system)
            do {
                _ = try await backup
                Issue.record("the backup ran to its end although it was cancelled")
            } catch {
                #expect(error is CancellationError, "\(error)")
            }

            let catalog = try service.catalog()
            let job = try #require(try catalog.job(id: id))
            #expect(job.state == .failed)
            #expect(job.message?.contains("cancelled") == true, "\(job.message ?? "")")
            let end = try #require(try catalog.operationEnd(startSeq: job.auditSeq))
            #expect(end.details?.contains(#""code":"cancelled""#) == true, "\(end.details ?? "")")
            #expect(try catalog.auditRecords(AuditFilter(action: "job.cancel")).map(\.target) == [id])
            #expect(try await service.repository.snapshots().isEmpty)
            #expect(service.jobs.running().isEmpty)

            let report = try await service.verify(readData: true, by: .system)
            #expect(report.ok, "\(report.errors.map(\.message))")
            _ = try await service.backup(SourceBackupRequest(), by: .system)
            #expect(try await service.repository.snapshots().count == 1)
            #expect(try await service.verify(readData: true, by: .system).ok)

            // An ended job cannot be cancelled.
            let error = #expect(throws: BunkerError.self) { try service.cancelJob(id, by: .system) }
            #expect(error?.code == .invalidArgument)
        }
    }
}
