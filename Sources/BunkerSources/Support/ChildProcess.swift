import BunkerCore
import Foundation
import Synchronization

/// A helper program (pg_dump, psql, sqlite3) with pipes to its standard input and output and its
/// standard error kept for error messages.
///
/// Three promises, whatever the helper does:
/// - **It cannot hang Bunker.** Every helper has a deadline; a watchdog kills it there, its pipes
///   then end, and whoever waits for it gets an error naming the limit and the setting that sets it.
/// - **Its pipes never block Swift's cooperative pool.** Each pipe the helper writes is read to
///   its end by a thread of its own into a bounded buffer (so a helper that writes faster than the
///   repository takes waits, as with a plain pipe), and its input is written by a thread of its
///   own from a bounded queue. Async callers suspend until the bytes they need are there, or
///   until the queue has room (``waitForOutput(_:)``, ``writeInput(_:)``, ``exitStatus()``); the
///   synchronous ``readOutput(into:)`` blocks only when nobody waited first.
/// - **Its environment holds no secret it does not need.** It inherits only what a client program
///   reads (``inheritedVariables``): `PATH`, the locale, `HOME`, and libpq's own `PG*` variables
///   but `PGPASSWORD`; never `BUNKER_PASSWORD`, `SMTP_PASSWORD`, webhook secrets or anything else
///   of Bunker's. What the caller passes (the password of this one connection) is added.
///
/// Why not swift-subprocess: its execution lives inside one closure, while a backup hands
/// pg_dump's output to the archiver as a ``ByteStream`` that is read after
/// ``Source/prepareBackup(scratch:)`` has returned, and killed by the backup's cleanup; holding the
/// closure open would need an unstructured task per dump, and one-shot calls through it would
/// make two helpers for one idiom. Foundation's `Process` starts the program (posix_spawn) and
/// reaps it; the pipes, the watchdog and the environment are below.
final class ChildProcess: Sendable {
    let program: String
    /// What the helper does, for messages: "pg_dump of database clinic".
    let purpose: String
    let timeout: HelperTimeout
    private let process: Process
    private let input: PipeWriter?
    private let output: PipeReader?
    private let errors: PipeReader
    private let exit: ExitState

    /// Starts `executable`; `input`/`output` ask for pipes, otherwise /dev/null (or
    /// `outputFile`, which the program then writes itself).
    ///
    /// `inheriting` is the environment the helper's variables are picked from (Bunker's own,
    /// unless a test says otherwise); `environment` is added as it is.
    init(
        executable: String, arguments: [String], environment: [String: String] = [:], input: Bool = false, output: Bool = false,
        outputFile: FileHandle? = nil, timeout: HelperTimeout, purpose: String? = nil, inheriting: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        // A helper that exits early must not kill Bunker with SIGPIPE on the next write.
        signal(SIGPIPE, SIG_IGN)
        program = (executable as NSString).lastPathComponent
        self.purpose = purpose ?? program
        self.timeout = timeout
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = Self.environment(inheriting: inheriting, adding: environment)
        let inputPipe = input ? Pipe() : nil
        let outputPipe = output ? Pipe() : nil
        let errorPipe = Pipe()
        process.standardInput = inputPipe ?? FileHandle.nullDevice
        process.standardOutput = outputPipe ?? outputFile ?? FileHandle.nullDevice
        process.standardError = errorPipe
        let exit = ExitState()
        self.exit = exit
        process.terminationHandler = { process in
            let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
            exit.finish(status)
        }
        do {
            let process = process
            try withStopSignalsUnblocked { try process.run() }
        } catch {
            throw BunkerError(.sourceIO, "Cannot run \(executable): \(error). Is it installed?")
        }
        // The parent's copies of the child's ends: while they are open, a pipe never ends.
        try? outputPipe?.fileHandleForWriting.close()
        try? errorPipe.fileHandleForWriting.close()
        try? inputPipe?.fileHandleForReading.close()
        self.input = inputPipe.map { PipeWriter($0.fileHandleForWriting, limit: 4 << 20) }
        self.output = outputPipe.map { PipeReader($0.fileHandleForReading, limit: 16 << 20, keepsTail: false) }
        self.errors = PipeReader(errorPipe.fileHandleForReading, limit: 64 << 10, keepsTail: true)
        exit.arm(after: timeout.seconds, pid: process.processIdentifier)
    }

    /// The variables a helper inherits from Bunker's environment: what a client program needs
    /// to run (its search path, locale, home and temporary directory) and libpq's own settings
    /// (`PGSSLMODE`, `PGSERVICEFILE`, …) but `PGPASSWORD`, which may be meant for another source:
    /// a source's password is passed by its caller, from its `password_env` or `password_file`.
    /// Everything else is left out: Bunker's environment holds secrets (`BUNKER_PASSWORD`,
    /// `SMTP_PASSWORD`, webhook secrets) that no helper needs.
    static func environment(inheriting inherited: [String: String], adding extra: [String: String]) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in inherited
        where inheritedVariables.contains(key) || key.hasPrefix("LC_") || (key.hasPrefix("PG") && key != "PGPASSWORD") {
            result[key] = value
        }
        for (key, value) in extra { result[key] = value }
        return result
    }

    /// Inherited by name (besides `LC_*` and `PG*`).
    static let inheritedVariables: Set<String> = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "KRB5CCNAME"]

    // MARK: - Output

    /// Waits, suspended rather than blocking a thread, until `count` bytes of output are buffered
    /// or the output has ended; cancelling the task kills the helper.
    func waitForOutput(_ count: Int) async {
        guard let output else { return }
        await withTaskCancellationHandler {
            await output.waitFor(count)
        } onCancel: {
            self.kill()
        }
    }

    /// Reads output into `buffer`: what is buffered, up to its size; 0 only at the end. Blocks
    /// only when nothing is buffered yet (call ``waitForOutput(_:)`` first from async code).
    func readOutput(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let output else { return 0 }
        let n = output.read(into: buffer)
        if n == 0, let failure = output.failure {
            throw BunkerError(.sourceIO, "Cannot read the output of \(program): \(String(cString: strerror(failure))).")
        }
        return n
    }

    /// Whether the output has ended and been read.
    var outputEnded: Bool { output?.isDrained ?? true }

    /// The whole output, once the helper has closed it.
    func readAllOutput() async throws -> Data {
        guard output != nil else { return Data() }
        var result = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            await waitForOutput(buffer.count)
            let n = try buffer.withUnsafeMutableBytes { try readOutput(into: $0) }
            if n == 0 { break }
            result.append(contentsOf: buffer[0..<n])
        }
        return result
    }

    // MARK: - Input

    /// Queues `data` for the program's standard input; suspends while 4 MiB are queued already.
    func writeInput(_ data: Data) async throws {
        do {
            try await input!.write(data)
        } catch {
            if didTimeOut { throw timeoutError() }
            throw BunkerError(.sourceIO, "\(program) stopped reading its input: \(errorText.isEmpty ? "\(error)" : errorText)")
        }
    }

    /// Closes standard input once what is queued is written, so the program sees its end.
    func closeInput() {
        input?.close()
    }

    // MARK: - End

    /// Waits, suspended, for the program to end and its standard error to be read; returns its
    /// exit status (128+signal when killed).
    func exitStatus() async -> Int32 {
        closeInput()
        let status = await exit.status()
        await errors.waitForEnd()
        return status
    }

    /// The exit status, waiting for it synchronously; for callers that cannot suspend, once the
    /// output has ended (the program is exiting then).
    func exitStatusBlocking() -> Int32 {
        closeInput()
        let status = exit.statusBlocking()
        errors.waitForEndBlocking()
        return status
    }

    /// Whether the watchdog killed the program at its deadline.
    var didTimeOut: Bool { exit.timedOut }

    /// Throws the timeout error if the program was killed at its deadline, else an error built
    /// from its standard error when `status` is not 0.
    func check(_ status: Int32, failure: (_ said: String) -> String) throws {
        if didTimeOut { throw timeoutError() }
        guard status == 0 else {
            let said = errorText
            throw BunkerError(.sourceIO, failure(said.isEmpty ? "nothing" : said))
        }
    }

    /// The error for a helper killed at its deadline.
    func timeoutError() -> BunkerError {
        BunkerError(.sourceIO, "\(purpose) did not finish within \(timeout.shown), so Bunker stopped it. \(timeout.advice)")
    }

    /// Kills the program (a load that must not commit, a backup that failed elsewhere). Does not
    /// wait: the program is reaped by Foundation, and its pipes end by themselves.
    func kill() {
        exit.unlessFinished { Glibc.kill(process.processIdentifier, SIGKILL) }
        output?.abandon()
        input?.abandon()
    }

    /// What the program wrote on standard error (its last 64 KiB), trimmed.
    var errorText: String {
        String(decoding: errors.tail(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a program to its end and returns its standard output; throws with its standard error
    /// when it fails, or when it outlives its timeout.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: HelperTimeout, what: String,
        inheriting: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> String {
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment, output: true,
                                     timeout: timeout, purpose: what, inheriting: inheriting)
        let output: Data
        do {
            output = try await child.readAllOutput()
        } catch {
            child.kill()
            throw error
        }
        let status = await child.exitStatus()
        try child.check(status) { said in "\(what) failed (\(child.program) exited with \(status)): \(said)" }
        return String(decoding: output, as: UTF8.self)
    }
}

/// How long a helper may run, and how the message about it names the setting.
public struct HelperTimeout: Sendable, Equatable {
    public var duration: Duration
    /// What to do about it, said after "did not finish within …".
    public var advice: String

    public init(_ duration: Duration, advice: String = "") {
        self.duration = duration
        self.advice = advice
    }

    /// 6 hours: a clinic's database dumps or loads in minutes; one that takes hours is stuck
    /// (behind a lock, on a dead connection), and an operator should hear of it the same day.
    public static let defaultDuration: Duration = .seconds(6 * 3600)

    var seconds: Double {
        let (s, attoseconds) = duration.components
        return Double(s) + Double(attoseconds) / 1e18
    }

    /// "3s", "2h", "1h30m".
    var shown: String { Self.format(duration) }

    /// Writes a duration the way the configuration takes it.
    public static func format(_ duration: Duration) -> String {
        var s = duration.components.seconds
        if s <= 0 { return "0s" }
        var text = ""
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60)] where s >= size {
            text += "\(s / size)\(unit)"
            s %= size
        }
        if s > 0 { text += "\(s)s" }
        return text
    }
}

/// One pipe, read to its end by a thread of its own.
///
/// The thread reads while fewer than `limit` bytes wait to be taken (or always, keeping the last
/// `limit` bytes, when `keepsTail`: a standard error that nobody reads must never stop the helper).
/// All state is guarded by `condition`'s lock.
private final class PipeReader: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending = Data()
    private var ended = false
    private var abandoned = false
    private var failureCode: Int32?
    private var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    private let limit: Int
    private let keepsTail: Bool

    init(_ handle: FileHandle, limit: Int, keepsTail: Bool) {
        self.limit = limit
        self.keepsTail = keepsTail
        Thread.detachNewThread { [self] in
            pump(handle)
        }
    }

    private func pump(_ handle: FileHandle) {
        let fd = handle.fileDescriptor
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            condition.lock()
            while !keepsTail && !abandoned && pending.count >= limit { condition.wait() }
            let stop = abandoned
            condition.unlock()
            if stop { break }
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            let code = n < 0 ? errno : nil
            condition.lock()
            if n > 0 {
                pending.append(contentsOf: chunk[0..<n])
                if keepsTail && pending.count > limit { pending = Data(pending.suffix(limit / 2)) }
            } else {
                failureCode = code
            }
            let done = n <= 0
            let ready = resumeWaiters(ended: done)
            condition.broadcast()
            condition.unlock()
            for continuation in ready { continuation.resume() }
            if done { break }
        }
        condition.lock()
        let ready = resumeWaiters(ended: true)
        condition.broadcast()
        condition.unlock()
        for continuation in ready { continuation.resume() }
        try? handle.close()
    }

    /// Marks the end if `ended`, and takes the waiters whose wait is over. Called with the lock held.
    private func resumeWaiters(ended: Bool) -> [CheckedContinuation<Void, Never>] {
        if ended { self.ended = true }
        var ready: [CheckedContinuation<Void, Never>] = []
        waiters.removeAll { waiter in
            guard self.ended || (waiter.count >= 0 && pending.count >= min(waiter.count, limit)) else { return false }
            ready.append(waiter.continuation)
            return true
        }
        return ready
    }

    /// Suspends until the pipe has ended.
    func waitForEnd() async {
        await waitFor(-1)
    }

    /// Suspends until `count` bytes (at most the buffer's limit) are buffered or the pipe ended;
    /// a negative count waits for the end.
    func waitFor(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if ended || (count >= 0 && pending.count >= min(count, limit)) {
                condition.unlock()
                continuation.resume()
                return
            }
            waiters.append((count, continuation))
            condition.unlock()
        }
    }

    /// Blocks until the pipe has ended.
    func waitForEndBlocking() {
        condition.lock()
        while !ended { condition.wait() }
        condition.unlock()
    }

    /// Takes up to `buffer.count` buffered bytes; blocks while none are buffered and the pipe is open.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && !ended { condition.wait() }
        let n = min(buffer.count, pending.count)
        guard n > 0 else { return 0 }
        pending.copyBytes(to: buffer.bindMemory(to: UInt8.self), count: n)
        pending.removeFirst(n)
        if pending.isEmpty { pending = Data() }
        condition.broadcast()
        return n
    }

    /// Whether the pipe ended and everything buffered was taken.
    var isDrained: Bool {
        condition.lock()
        defer { condition.unlock() }
        return ended && pending.isEmpty
    }

    var failure: Int32? {
        condition.lock()
        defer { condition.unlock() }
        return failureCode
    }

    /// What is buffered, left in place (standard error).
    func tail() -> Data {
        condition.lock()
        defer { condition.unlock() }
        return pending
    }

    /// Nobody will read any more: the thread stops filling the buffer and closes the pipe.
    func abandon() {
        condition.lock()
        abandoned = true
        condition.broadcast()
        condition.unlock()
    }
}

/// One pipe to a helper's input, written by a thread of its own from a queue of at most `limit`
/// bytes. All state is guarded by `condition`'s lock.
private final class PipeWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [Data] = []
    private var queued = 0
    private var closed = false
    private var failureCode: Int32?
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let limit: Int

    init(_ handle: FileHandle, limit: Int) {
        self.limit = limit
        Thread.detachNewThread { [self] in
            drain(handle)
        }
    }

    private func drain(_ handle: FileHandle) {
        let fd = handle.fileDescriptor
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            guard !queue.isEmpty else {
                condition.unlock()
                break
            }
            let data = queue.removeFirst()
            condition.unlock()
            var code: Int32?
            do {
                try writeAll(data, to: fd, path: "the helper's standard input")
            } catch {
                code = ((error as? BunkerError)?.cause as? POSIXFailure)?.errno ?? EIO
            }
            condition.lock()
            queued -= data.count
            if let code {
                failureCode = code
                queue = []
                queued = 0
            }
            let ready = waiters
            waiters = []
            condition.unlock()
            for waiter in ready { waiter.resume() }
            if code != nil { break }
        }
        condition.lock()
        closed = true
        let ready = waiters
        waiters = []
        condition.unlock()
        for waiter in ready { waiter.resume() }
        try? handle.close()
    }

    /// Queues `data`, then suspends while more than `limit` bytes wait; throws once a write
    /// failed (the program stopped reading) or the pipe was abandoned.
    func write(_ data: Data) async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            defer { condition.unlock() }
            if failureCode == nil && !closed {
                queue.append(data)
                queued += data.count
                condition.broadcast()
                if queued > limit {
                    waiters.append(continuation)
                    return
                }
            }
            continuation.resume()
        }
        if let failed = failure { throw BunkerError(.sourceIO, String(cString: strerror(failed))) }
    }

    /// Why writing failed: the write's error, or EPIPE once the pipe was closed.
    private var failure: Int32? {
        condition.lock()
        defer { condition.unlock() }
        return failureCode ?? (closed ? EPIPE : nil)
    }

    /// No more input: the thread writes what is queued, then closes the pipe.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Nothing more is written: what is queued is dropped and the pipe closed.
    func abandon() {
        condition.lock()
        queue = []
        queued = 0
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// A helper's exit status, for async and blocking waiters, and the watchdog that kills it at
/// its deadline. All state is guarded by `condition`'s lock.
private final class ExitState: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Int32?
    private var waiters: [CheckedContinuation<Int32, Never>] = []
    private var watchdog: (any DispatchSourceTimer)?
    private var killedAtDeadline = false

    /// Kills `pid` after `seconds` unless it has ended by then. The kill happens under the lock
    /// and only while the status is unknown, so a pid already reaped (and perhaps reused) is
    /// never signalled.
    func arm(after seconds: Double, pid: Int32) {
        condition.lock()
        defer { condition.unlock() }
        // A timer source must be resumed before it is released (libdispatch traps on releasing
        // an inactive one), so none is made for a program that has already ended.
        guard value == nil else { return }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + seconds)
        timer.setEventHandler { [self] in
            unlessFinished {
                killedAtDeadline = true
                Glibc.kill(pid, SIGKILL)
            }
        }
        watchdog = timer
        timer.resume()
    }

    var timedOut: Bool {
        condition.lock()
        defer { condition.unlock() }
        return killedAtDeadline
    }

    func finish(_ status: Int32) {
        condition.lock()
        value = status
        let ready = waiters
        waiters = []
        // Cancelling releases the handler, and with it this object.
        watchdog?.cancel()
        watchdog = nil
        condition.broadcast()
        condition.unlock()
        for waiter in ready { waiter.resume(returning: status) }
    }

    /// Runs `body` under the lock unless the status is known (the process has been reaped).
    func unlessFinished(_ body: () -> Void) {
        condition.lock()
        defer { condition.unlock() }
        if value == nil { body() }
    }

    func status() async -> Int32 {
        await withCheckedContinuation { continuation in
            condition.lock()
            if let value {
                condition.unlock()
                continuation.resume(returning: value)
                return
            }
            waiters.append(continuation)
            condition.unlock()
        }
    }

    func statusBlocking() -> Int32 {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }
}
