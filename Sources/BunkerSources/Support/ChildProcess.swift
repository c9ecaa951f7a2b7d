import BunkerCore
import Foundation
import Synchronization

/// A helper program (pg_dump, psql, sqlite3) with pipes to its standard input and output and its
/// standard error kept for error messages.
final class ChildProcess: Sendable {
    private let process: Process
    private let inputPipe: Pipe?
    private let outputPipe: Pipe?
    private let errors = Mutex(Data())
    private let errorsDone = DispatchSemaphore(value: 0)
    let program: String

    /// Starts `executable`; `input`/`output` ask for pipes, otherwise /dev/null.
    init(executable: String, arguments: [String], environment: [String: String] = [:], input: Bool = false, output: Bool = false) throws {
        // A helper that exits early must not kill Bunker with SIGPIPE on the next write.
        signal(SIGPIPE, SIG_IGN)
        program = (executable as NSString).lastPathComponent
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        inputPipe = input ? Pipe() : nil
        outputPipe = output ? Pipe() : nil
        process.standardInput = inputPipe ?? FileHandle.nullDevice
        process.standardOutput = outputPipe ?? FileHandle.nullDevice
        let errorPipe = Pipe()
        process.standardError = errorPipe
        do {
            try process.run()
        } catch {
            throw BunkerError(.sourceIO, "Cannot run \(executable): \(error). Is it installed?")
        }
        let fd = errorPipe.fileHandleForReading.fileDescriptor
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                self.errors.withLock { data in
                    data.append(contentsOf: buffer[0..<n])
                    // Keep the end, where the reason usually is.
                    if data.count > 64 << 10 { data = Data(data.suffix(32 << 10)) }
                }
            }
            self.errorsDone.signal()
        }
    }

    /// The read end of the program's standard output.
    var outputFD: Int32 { outputPipe!.fileHandleForReading.fileDescriptor }

    /// Reads the program's output until `buffer` is full or the output ends.
    func readOutput(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = read(outputFD, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw BunkerError(.sourceIO, "Cannot read the output of \(program): \(String(cString: strerror(errno))).")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes to the program's standard input.
    func writeInput(_ data: Data) throws {
        let fd = inputPipe!.fileHandleForWriting.fileDescriptor
        do {
            try SystemCalls.write(fd: fd, data, path: "the input of \(program)")
        } catch {
            throw BunkerError(.sourceIO, "\(program) stopped reading its input: \(errorText.isEmpty ? "\(error)" : errorText)")
        }
    }

    /// Closes standard input, so the program sees its end.
    func closeInput() {
        try? inputPipe?.fileHandleForWriting.close()
    }

    /// Waits for the program to end; returns its exit status (128+signal when killed).
    @discardableResult
    func wait() -> Int32 {
        closeInput()
        process.waitUntilExit()
        errorsDone.wait()
        errorsDone.signal()
        if process.terminationReason == .uncaughtSignal { return 128 + process.terminationStatus }
        return process.terminationStatus
    }

    /// Kills the program (a load that must not commit) and reaps it.
    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        try? outputPipe?.fileHandleForReading.close()
        wait()
    }

    /// What the program wrote on standard error, trimmed.
    var errorText: String {
        String(decoding: errors.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a program to its end and returns its standard output; throws with its standard error
    /// when it fails.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], what: String) throws -> String {
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment, output: true)
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try child.readOutput(into: $0) }
            output.append(contentsOf: buffer[0..<n])
            if n < buffer.count { break }
        }
        let status = child.wait()
        guard status == 0 else {
            throw BunkerError(.sourceIO, "\(what) failed (\(child.program) exited with \(status)): \(child.errorText)")
        }
        return String(decoding: output, as: UTF8.self)
    }
}
