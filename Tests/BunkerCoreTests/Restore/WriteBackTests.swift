@testable import BunkerCore
import BunkerTesting
import Foundation
import Synchronization
import Testing

/// A restore flushes its target while it writes (``WriteBack``), and no flush's failure is lost.
@Suite struct WriteBackTests {
    /// Records the flushes it is asked for and answers each with the next of `results` (0 once they run out).
    final class FlushRecorder: Sendable {
        let calls = Mutex(0)
        let results: Mutex<[Int32]>

        init(results: [Int32] = []) {
            self.results = Mutex(results)
        }

        func flush() -> Int32 {
            calls.withLock { $0 += 1 }
            return results.withLock { $0.isEmpty ? 0 : $0.removeFirst() }
        }
    }

    @Test func aFlushStartsOnceEnoughIsWrittenAndTheLastOneWaitsForIt() async throws {
        let recorder = FlushRecorder()
        let writeBack = WriteBack(every: 100) { recorder.flush() }
        writeBack.wrote(60)
        #expect(writeBack.backgroundFlushes == 0)
        writeBack.wrote(50)
        try await writeBack.finish()
        // The background flush ran before the final one, which ran once.
        #expect(writeBack.backgroundFlushes == 1)
        #expect(recorder.calls.withLock { $0 } == 2)
    }

    @Test func aBackgroundFlushThatFailedFailsTheRestoreEvenWhenTheLastSucceeds() async throws {
        // syncfs reports a write-back error once per descriptor: the final flush would succeed.
        let recorder = FlushRecorder(results: [EIO])
        let writeBack = WriteBack(every: 10) { recorder.flush() }
        writeBack.wrote(10)
        let error = await #expect(throws: BunkerError.self) { try await writeBack.finish() }
        #expect(error?.code == .sourceIO)
        #expect(error?.message.contains(String(cString: strerror(EIO))) == true)
        #expect(recorder.calls.withLock { $0 } == 2)
    }

    @Test func theLastFlushFailingFailsTheRestore() async throws {
        let recorder = FlushRecorder(results: [ENOSPC])
        let writeBack = WriteBack(every: 1 << 30) { recorder.flush() }
        writeBack.wrote(10)
        await #expect(throws: BunkerError.self) { try await writeBack.finish() }
        #expect(writeBack.backgroundFlushes == 0)
    }

    /// A restore writes large files around the page cache (``DirectFileWriter``), whole and
    /// exact whatever their length, and small ones through it.
    @Test(.enabled(if: !LocalStorageTests.temporaryDirectoryIsOnTmpfs, "tmpfs keeps every file in the page cache"))
    func largeRestoredFilesGoAroundThePageCache() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            // Letters in a pattern that differs from one 4 KiB block to the next.
            let letters: [UInt8] = (0..<((3 << 20) + 77)).map { (i: Int) -> UInt8 in UInt8(97 + (i * 7 + i / 4096) % 26) }
            let large = String(decoding: letters, as: UTF8.self)
            let small = "a small document\n"
            let id = try await forge.snapshot([
                try await forge.file(Array("large.bin".utf8), large),
                try await forge.file(Array("small.txt".utf8), small),
            ])
            let report = try await Restorer(loader: repo).restore(tree: try await repo.loadSnapshot(id).tree, to: dir + "/out")
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(try String(contentsOfFile: dir + "/out/large.bin", encoding: .utf8) == large)
            #expect(try String(contentsOfFile: dir + "/out/small.txt", encoding: .utf8) == small)
            // Reading them back above brought them into the cache: a second restore, not read, is
            // the one looked at.
            let again = try await Restorer(loader: repo).restore(tree: try await repo.loadSnapshot(id).tree, to: dir + "/again")
            #expect(again.filesRestored == 2)
            let (resident, total) = try LocalStorageTests.residentPages(dir + "/again/large.bin")
            #expect(resident <= 1, "\(resident) of \(total) pages of the restored 3 MiB file in the page cache")
            #expect(try LocalStorageTests.residentPages(dir + "/again/small.txt").resident == 1)
        }
    }

    /// A real restore, with a flush every 64 KiB: the target is flushed while files are written,
    /// and every file comes back whole.
    @Test func aRestoreFlushesItsTargetAsItWrites() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let forge = SnapshotForge(repo)
            var files: [Node] = []
            var contents: [String: String] = [:]
            for i in 0..<12 {
                let text = String(repeating: "record \(i) of a restore flushed as it goes\n", count: 2_500)
                contents["f\(i)"] = text
                files.append(try await forge.file(Array("f\(i)".utf8), text))
            }
            let id = try await forge.snapshot([try await forge.directory(Array("d".utf8), files)])
            let restorer = Restorer(loader: repo, includes: [], progress: nil, writeBackEvery: 64 << 10)
            let report = try await restorer.restore(tree: try await repo.loadSnapshot(id).tree, to: dir + "/target")
            #expect(report.failures.isEmpty)
            #expect(report.filesRestored == 12)
            #expect(restorer.backgroundFlushes.withLock { $0 } >= 1, "about 1.3 MB written, a flush every 64 KiB")
            for (name, text) in contents {
                #expect(try String(contentsOfFile: dir + "/target/d/" + name, encoding: .utf8) == text)
            }
        }
    }
}
