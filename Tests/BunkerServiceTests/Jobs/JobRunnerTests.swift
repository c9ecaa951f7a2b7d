import BunkerCore
@testable import BunkerService
import Testing

/// The job runner's one-writer claim and its live jobs, without a repository: the bodies are
/// stand-ins that wait for the test to let them finish.
@Suite struct JobRunnerTests {
    @Test func aSecondWriterIsRefusedAsBusyNamingTheRunningOne() async throws {
        let runner = JobRunner()
        let (release, running) = Gate.make()
        async let first: Void = runner.run(JobOptions("a backup by alice", access: .writes)) { await running.wait() }
        try await waitUntil { runner.running().count == 1 }
        let error = await #expect(throws: BunkerError.self) {
            try await runner.run(JobOptions("a cleanup by bob", access: .writes)) {}
        }
        #expect(error?.code == .repositoryLocked)
        #expect(error?.message.contains("a backup by alice is running") == true)
        release()
        try await first
        #expect(runner.running().isEmpty)
    }

    @Test func aWriterAskedToWaitRunsOnceTheRunningOneEnds() async throws {
        let runner = JobRunner(pollInterval: .milliseconds(5))
        let (release, running) = Gate.make()
        async let first: Void = runner.run(JobOptions("a backup by alice", access: .writes)) { await running.wait() }
        try await waitUntil { runner.running().count == 1 }
        async let second: String = runner.run(JobOptions("a scheduled cleanup", access: .writes, wait: nil)) {
            // The first writer has ended before the second one's body starts.
            runner.running().map(\.label).joined(separator: ",")
        }
        try await Task.sleep(for: .milliseconds(50))
        release()
        try await first
        #expect(try await second == "a scheduled cleanup")
    }

    @Test func aWaitingWriterGoesBeforeWritersThatDoNotWait() async throws {
        let runner = JobRunner(pollInterval: .milliseconds(5))
        let (release, running) = Gate.make()
        async let first: Void = runner.run(JobOptions("a backup by alice", access: .writes)) { await running.wait() }
        try await waitUntil { runner.running().count == 1 }
        async let scheduled: Void = runner.run(JobOptions("a scheduled backup", access: .writes, wait: nil)) {}
        try await Task.sleep(for: .milliseconds(50))
        release()
        try await first
        // Alice's backup has ended; the waiting schedule is next, not Bob's backup.
        let error = await #expect(throws: BunkerError.self) {
            try await runner.run(JobOptions("a backup by bob", access: .writes)) {}
        }
        #expect(error?.message.contains("a scheduled backup is") == true, "\(error?.message ?? "")")
        try await scheduled
    }

    /// A backup whose snapshot is committed goes on to work out its ZIP checksum, which only
    /// reads: from then on it is a reader, and the next writer is not told "busy".
    @Test func aWriterWhoseWritesAreDoneNoLongerHoldsTheClaim() async throws {
        let runner = JobRunner()
        let (releaseAlice, alice) = Gate.make()
        async let first: Void = runner.run(JobOptions("a backup by alice", access: .writes)) {
            JobRunner.current?.writesDone()
            await alice.wait()
        }
        try await waitUntil { runner.running().first?.access == .reads }
        // Carol's restore is not told "busy": it takes the claim while Alice's job still runs.
        let (releaseCarol, carol) = Gate.make()
        async let second: Void = runner.run(JobOptions("a restore by carol", access: .writes)) { await carol.wait() }
        try await waitUntil { runner.running().count == 2 }
        #expect(runner.running().map(\.label) == ["a backup by alice", "a restore by carol"])
        // Alice's job ends, and does not release the claim that is Carol's now.
        releaseAlice()
        try await first
        let error = await #expect(throws: BunkerError.self) {
            try await runner.run(JobOptions("a backup by dave", access: .writes)) {}
        }
        #expect(error?.message.contains("a restore by carol is running") == true, "\(error?.message ?? "")")
        releaseCarol()
        try await second
    }

    @Test func readersRunBesideAWriter() async throws {
        let runner = JobRunner()
        let (release, running) = Gate.make()
        async let writer: Void = runner.run(JobOptions("a backup by alice", access: .writes)) { await running.wait() }
        try await waitUntil { runner.running().count == 1 }
        let labels = try await runner.run(JobOptions("a verify by olga", access: .reads)) {
            runner.running().map(\.label)
        }
        #expect(labels == ["a backup by alice", "a verify by olga"])
        release()
        try await writer
    }
}

/// A one-shot signal: `wait()` returns once the release function has been called.
private struct Gate: Sendable {
    let stream: AsyncStream<Void>

    static func make() -> (release: @Sendable () -> Void, gate: Gate) {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        return ({ continuation.finish() }, Gate(stream: stream))
    }

    func wait() async {
        for await _ in stream {}
    }
}

private func waitUntil(_ condition: () -> Bool) async throws {
    for _ in 0..<500 where !condition() {
        try await Task.sleep(for: .milliseconds(10))
    }
    try #require(condition())
}
