import BunkerCore
import Foundation
import Synchronization

/// What a job does to the repository: writers exclude each other, readers run beside anything.
public enum JobAccess: Sendable {
    /// Backups, restores (with their safety backups), cleanups, forgets, prunes, copies.
    case writes
    /// Verifies, drills, exports.
    case reads
}

/// How a job is run: what to call it in a "busy" answer, and how long a writer waits for another.
public struct JobOptions: Sendable {
    /// Who runs what, for the message a second writer gets: "a backup by alice".
    public var label: String
    public var access: JobAccess
    /// How long a writer waits for the running writer to finish before answering "busy";
    /// zero answers at once, nil waits as long as it takes (until cancelled).
    public var wait: Duration?
    /// The counters the job updates, shown by `bunker jobs` and `GET /api/v1/jobs`.
    public var progress: OperationProgress

    public init(_ label: String, access: JobAccess, wait: Duration? = .zero, progress: OperationProgress = OperationProgress()) {
        self.label = label
        self.access = access
        self.wait = wait
        self.progress = progress
    }
}

/// A job this process runs, as `bunker jobs` and `GET /api/v1/jobs` show it.
public struct LiveJob: Sendable {
    /// The catalog job of the job's first audited operation (nil until its start row is written).
    public var jobID: String?
    public var label: String
    public var access: JobAccess
    public var progress: OperationProgress
}

/// The one place every face (the API, the scheduler, the CLI, later the web console) runs a
/// long operation through: it owns the one-writer claim, knows each running job's progress, and
/// runs jobs that outlive their request inside its own task group (``run()``).
///
/// One writer per repository in this process: backups and restores take only a shared
/// repository lock (several readers may run), so the repository lock alone would let two
/// backups, or a cleanup and a restore, run together; the claim is what makes them conflict.
/// Another process's exclusive lock still ends in the repository lock's own "busy" error.
///
/// The claim is taken before the operation's start row is written and released after its end
/// row, so the audit trail's start and end rows of two writers never interleave.
public final class JobRunner: Sendable {
    private struct State {
        /// The running writer's label.
        var writer: String?
        /// Running jobs by a key of their own (the catalog's job id is known only later).
        var live: [UInt64: LiveJob] = [:]
        var nextKey: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Jobs handed to ``start(_:_:)``, run by ``run()``.
    private let queue: AsyncStream<@Sendable () async -> Void>
    private let enqueue: AsyncStream<@Sendable () async -> Void>.Continuation
    /// How often a waiting writer looks whether the claim is free.
    private let pollInterval: Duration
    /// Set once ``run()`` consumes `queue`, which only one task may iterate.
    private let looping = Atomic(false)

    public init(pollInterval: Duration = .milliseconds(50)) {
        (queue, enqueue) = AsyncStream.makeStream()
        self.pollInterval = pollInterval
    }

    /// The job the current task runs, so that ``BunkerService/audited`` can tell it its job id.
    @TaskLocal static var current: JobContext?

    /// Runs `body` as a job in the calling task: for a writer, claims the one-writer slot first
    /// (waiting up to `options.wait`), or throws ``BunkerError/Code/repositoryLocked`` naming the
    /// running writer.
    public func run<T>(_ options: JobOptions, _ body: () async throws -> T) async throws -> T {
        let key = try await claim(options)
        defer { end(key) }
        let context = JobContext(runner: self, key: key)
        return try await Self.$current.withValue(context) {
            try await body()
        }
    }

    /// Starts `body` as a job in the runner's task group (``run()`` must be running, as it is in
    /// `bunker serve` and in every application ``buildApplication`` makes), and returns once the
    /// job's first audited operation has written its start row: its catalog job id. A job that
    /// fails before that (a "busy" claim, nothing to back up) throws its error here.
    public func start(_ options: JobOptions, _ body: @escaping @Sendable () async throws -> Void) async throws -> String {
        let (started, announce) = AsyncThrowingStream.makeStream(of: String.self)
        enqueue.yield { [self] in
            do {
                let key = try await claim(options)
                defer { end(key) }
                let context = JobContext(runner: self, key: key, announce: announce)
                try await Self.$current.withValue(context) { try await body() }
                announce.finish()
            } catch {
                announce.finish(throwing: error)
            }
        }
        for try await jobID in started { return jobID }
        throw BunkerError(.cancelled, "The job ended before its first operation started; see the server's log.")
    }

    /// Runs the jobs handed to ``start(_:_:)`` until cancelled; cancelling it cancels them.
    /// A second call made while one runs only waits for cancellation.
    public func run() async {
        guard !looping.exchange(true, ordering: .acquiringAndReleasing) else {
            while (try? await Task.sleep(for: .seconds(3600))) != nil {}
            return
        }
        await withDiscardingTaskGroup { group in
            for await job in queue {
                group.addTask { await job() }
            }
        }
    }

    /// The jobs running in this process, oldest first.
    public func running() -> [LiveJob] {
        state.withLock { state in state.live.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// The progress of a running job, by its catalog job id.
    public func progress(of jobID: String) -> OperationProgress? {
        state.withLock { state in state.live.values.first { $0.jobID == jobID }?.progress }
    }

    // MARK: The claim

    private func claim(_ options: JobOptions) async throws -> UInt64 {
        let clock = ContinuousClock()
        let deadline = options.wait.map { clock.now.advanced(by: $0) }
        while true {
            // The job's key once claimed, else the running writer's label.
            let claimed: Result<UInt64, Holder> = state.withLock { state in
                if options.access == .writes {
                    if let writer = state.writer { return .failure(Holder(label: writer)) }
                    state.writer = options.label
                }
                state.nextKey += 1
                state.live[state.nextKey] = LiveJob(jobID: nil, label: options.label, access: options.access, progress: options.progress)
                return .success(state.nextKey)
            }
            guard case .failure(let holder) = claimed else { return try claimed.get() }
            if let deadline, clock.now >= deadline {
                throw BunkerError(
                    .repositoryLocked,
                    "The repository is busy: \(holder.label) is running. Only one backup, restore or cleanup runs at a time; try again when it has finished, or wait for it (--retry-lock).")
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    private struct Holder: Error {
        var label: String
    }

    private func end(_ key: UInt64) {
        state.withLock { state in
            if let job = state.live.removeValue(forKey: key), job.access == .writes { state.writer = nil }
        }
    }

    fileprivate func started(_ key: UInt64, jobID: String) {
        state.withLock { state in state.live[key]?.jobID = jobID }
    }
}

/// The job a task runs: told its first audited operation's job id.
final class JobContext: Sendable {
    private let runner: JobRunner
    private let key: UInt64
    private let announce: AsyncThrowingStream<String, any Error>.Continuation?
    private let announced = Atomic(false)

    fileprivate init(runner: JobRunner, key: UInt64, announce: AsyncThrowingStream<String, any Error>.Continuation? = nil) {
        self.runner = runner
        self.key = key
        self.announce = announce
    }

    /// Called by each audited operation once its start row is written; the first one is the
    /// job's own (a restore's safety backup comes after the restore's start).
    func started(_ operation: AuditedOperation) {
        guard !announced.exchange(true, ordering: .acquiringAndReleasing) else { return }
        runner.started(key, jobID: operation.jobID)
        announce?.yield(operation.jobID)
    }
}
