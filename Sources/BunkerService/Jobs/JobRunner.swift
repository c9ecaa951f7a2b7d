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
    /// Cancels the job (see ``JobRunner/cancel(_:)``).
    let cancel: @Sendable () -> Void
}

/// The one place every face (the API, the scheduler, the CLI, later the web console) runs a
/// long operation through: it owns the one-writer claim, knows each running job's progress, and
/// runs jobs that outlive their request inside its own task group (``run()``).
///
/// One writer per repository in this process: backups and restores take only a shared
/// repository lock (several readers may run), so the repository lock alone would let two
/// backups, or a cleanup and a restore, run together; the claim is what makes them conflict.
/// Between processes that share a data directory (two `bunker backup` commands, a CLI restore
/// and `bunker serve`) the claim is also a lock file (``WriterClaimFile``), so a second writer
/// gets the same "busy" answer from every face. Another host's exclusive repository lock still
/// ends in the repository lock's own "busy" error.
///
/// While a job runs, the runner hands its counters to the watcher once a second (the service
/// publishes them in the catalog for `bunker jobs` in other processes) and cancels the job when
/// the watcher says another process asked to (`bunker jobs cancel`).
///
/// The claim is taken before the operation's start row is written and released after its end
/// row, so the audit trail's start and end rows of two writers never interleave.
public final class JobRunner: Sendable {
    private struct State {
        /// The running writer's label.
        var writer: String?
        /// Writers waiting for the claim, first come first served: a stream of writers that do
        /// not wait (API backups one after another) must not starve a waiting one (a schedule).
        var waiting: [(ticket: UInt64, label: String)] = []
        var nextTicket: UInt64 = 0
        /// Running jobs by a key of their own (the catalog's job id is known only later).
        var live: [UInt64: LiveJob] = [:]
        var nextKey: UInt64 = 0
        /// The last jobs that ended, oldest first, so that their final counters stay readable.
        var recent: [LiveJob] = []
        /// The running writer's hold on the claim file.
        var claimFile: WriterClaimFile.Held?
        var watcher: Watcher?
    }

    /// Told a running job's catalog id and counters once a second; answers true when the job is
    /// to be cancelled.
    public typealias Watcher = @Sendable (_ jobID: String, _ counters: OperationProgress.Counters) -> Bool

    private let state = Mutex(State())
    /// Jobs handed to ``start(_:_:)``, run by ``run()``.
    private let queue: AsyncStream<@Sendable () async -> Void>
    private let enqueue: AsyncStream<@Sendable () async -> Void>.Continuation
    /// How often a waiting writer looks whether the claim is free.
    private let pollInterval: Duration
    /// Set once ``run()`` consumes `queue`, which only one task may iterate.
    private let looping = Atomic(false)
    /// The claim between processes; nil keeps it within this process.
    private let claimFile: WriterClaimFile?
    /// How often the watcher is told a running job's counters.
    private let watchInterval: Duration

    /// A runner whose writers also claim `claimFile` (the data directory's `writer.lock`)
    /// against other processes.
    public init(claimFile: String? = nil, pollInterval: Duration = .milliseconds(50), watchInterval: Duration = .seconds(1)) {
        (queue, enqueue) = AsyncStream.makeStream()
        self.claimFile = claimFile.map(WriterClaimFile.init(path:))
        self.pollInterval = pollInterval
        self.watchInterval = watchInterval
    }

    /// Sets who is told running jobs' counters and may ask to cancel them (see ``Watcher``).
    public func watch(_ watcher: @escaping Watcher) {
        state.withLock { $0.watcher = watcher }
    }

    /// The job the current task runs, so that ``BunkerService/audited`` can tell it its job id.
    @TaskLocal static var current: JobContext?

    /// Runs `body` as a job in the calling task: for a writer, claims the one-writer slot first
    /// (waiting up to `options.wait`), or throws ``BunkerError/Code/repositoryLocked`` naming the
    /// running writer. ``cancel(_:)`` cancels `body` (Swift task cancellation, which the
    /// operations honour at safe points) and waits for it to end.
    public func run<T: Sendable>(_ options: JobOptions, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await perform(options, announce: nil, body)
    }

    /// Starts `body` as a job in the runner's task group (``run()`` must be running, as it is in
    /// `bunker serve` and in every application ``buildApplication`` makes), and returns once the
    /// job's first audited operation has written its start row: its catalog job id. A job that
    /// fails before that (a "busy" claim, nothing to back up) throws its error here.
    public func start(_ options: JobOptions, _ body: @escaping @Sendable () async throws -> Void) async throws -> String {
        let (started, announce) = AsyncThrowingStream.makeStream(of: String.self)
        enqueue.yield { [self] in
            do {
                try await perform(options, announce: announce, body)
                announce.finish()
            } catch {
                announce.finish(throwing: error)
            }
        }
        for try await jobID in started { return jobID }
        throw BunkerError(.cancelled, "The job ended before its first operation started; see the server's log.")
    }

    /// Cancels the running job `jobID` (a catalog job id). Its operation stops at its next safe
    /// point and ends as failed, leaving the repository as a kill would: it verifies, and the next
    /// run completes. False when this process runs no such job.
    @discardableResult
    public func cancel(_ jobID: String) -> Bool {
        let canceller = state.withLock { state in state.live.values.first { $0.jobID == jobID }?.cancel }
        canceller?()
        return canceller != nil
    }

    /// Tells the watcher the job's counters; true if it answers that the job is to be cancelled.
    private func askedToCancel(_ key: UInt64, progress: OperationProgress) -> Bool {
        let (jobID, watcher) = state.withLock { state in (state.live[key]?.jobID, state.watcher) }
        guard let jobID, let watcher else { return false }
        return watcher(jobID, progress.counters)
    }

    private enum Outcome<T: Sendable>: Sendable {
        case done(T)
        case cancelRequested
    }

    private func perform<T: Sendable>(
        _ options: JobOptions, announce: AsyncThrowingStream<String, any Error>.Continuation?, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let (cancelRequests, requestCancel) = AsyncStream.makeStream(of: Void.self)
        let key = try await claim(options) { requestCancel.finish() }
        defer { end(key) }
        let context = JobContext(runner: self, key: key, announce: announce)
        // The final counters, for whoever reads them from elsewhere.
        defer { _ = askedToCancel(key, progress: options.progress) }
        return try await withThrowingTaskGroup(of: Outcome<T>.self) { group in
            group.addTask {
                .done(try await Self.$current.withValue(context) { try await body() })
            }
            group.addTask {
                // Ends when cancel(_:) is called, or when the group is cancelled once the body ends.
                for await _ in cancelRequests {}
                return .cancelRequested
            }
            group.addTask { [self] in
                // Ends when the watcher asks to cancel, or when the group is cancelled.
                while (try? await Task.sleep(for: watchInterval)) != nil {
                    if askedToCancel(key, progress: options.progress) { return .cancelRequested }
                }
                return .cancelRequested
            }
            while let outcome = try await group.next() {
                switch outcome {
                case .done(let value):
                    group.cancelAll()
                    return value
                case .cancelRequested:
                    group.cancelAll()
                }
            }
            throw CancellationError()
        }
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

    /// The progress of a job this process runs or ran lately (its final counters), by its
    /// catalog job id.
    public func progress(of jobID: String) -> OperationProgress? {
        state.withLock { state in
            (state.live.values.first { $0.jobID == jobID } ?? state.recent.last { $0.jobID == jobID })?.progress
        }
    }

    /// How many ended jobs' counters are kept.
    static let recentLimit = 100

    // MARK: The claim

    private func claim(_ options: JobOptions, cancel: @escaping @Sendable () -> Void) async throws -> UInt64 {
        let clock = ContinuousClock()
        let deadline = options.wait.map { clock.now.advanced(by: $0) }
        var ticket: UInt64?
        defer {
            if let ticket { state.withLock { $0.waiting.removeAll { $0.ticket == ticket } } }
        }
        while true {
            // The job's key once claimed, else the label of the writer that runs or is next.
            let claimed: Result<UInt64, Holder> = try state.withLock { state in
                if options.access == .writes {
                    if let writer = state.writer { return .failure(Holder(label: writer)) }
                    if let first = state.waiting.first, first.ticket != ticket { return .failure(Holder(label: first.label, isWaiting: true)) }
                    if let claimFile {
                        switch try claimFile.tryClaim(label: options.label) {
                        case .success(let held): state.claimFile = held
                        case .failure(let busy): return .failure(Holder(label: busy.label))
                        }
                    }
                    state.writer = options.label
                }
                state.nextKey += 1
                state.live[state.nextKey] = LiveJob(jobID: nil, label: options.label, access: options.access, progress: options.progress, cancel: cancel)
                return .success(state.nextKey)
            }
            guard case .failure(let holder) = claimed else { return try claimed.get() }
            if let deadline, clock.now >= deadline {
                throw BunkerError(
                    .repositoryLocked,
                    "The repository is busy: \(holder.label) is \(holder.isWaiting ? "about to run" : "running"). Only one backup, restore or cleanup runs at a time; try again when it has finished.")
            }
            if ticket == nil {
                ticket = state.withLock { state in
                    state.nextTicket += 1
                    state.waiting.append((state.nextTicket, options.label))
                    return state.nextTicket
                }
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    private struct Holder: Error {
        var label: String
        var isWaiting = false
    }

    private func end(_ key: UInt64) {
        state.withLock { state in
            guard let job = state.live.removeValue(forKey: key) else { return }
            if job.access == .writes {
                state.writer = nil
                state.claimFile?.release()
                state.claimFile = nil
            }
            if job.jobID != nil {
                state.recent.append(job)
                if state.recent.count > Self.recentLimit { state.recent.removeFirst() }
            }
        }
    }

    /// The job's writes are committed and what it still does only reads: it goes on as a
    /// reader, and the one-writer claim passes to whoever asks next.
    fileprivate func writesDone(_ key: UInt64) {
        state.withLock { state in
            guard state.live[key]?.access == .writes else { return }
            state.live[key]?.access = .reads
            state.writer = nil
            state.claimFile?.release()
            state.claimFile = nil
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

    /// Called by a writer once what it writes is committed and its end row written, before
    /// work that only reads (a backup's ZIP checksum): other writers need not wait for that.
    func writesDone() {
        runner.writesDone(key)
    }

    /// Called by each audited operation once its start row is written; the first one is the
    /// job's own (a restore's safety backup comes after the restore's start).
    func started(_ operation: AuditedOperation) {
        guard !announced.exchange(true, ordering: .acquiringAndReleasing) else { return }
        runner.started(key, jobID: operation.jobID)
        announce?.yield(operation.jobID)
    }
}
