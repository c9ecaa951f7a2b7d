import BunkerCore
import Foundation

/// Printing for people and for scripts.
enum Output {
    static func printJSON(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(Timestamp.format(date))
        }
        guard let data = try? encoder.encode(value) else { return }
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    }

    static func warning(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }

    /// 1.5 GiB, 340 KiB, 12 B.
    static func bytes(_ value: UInt64) -> String {
        ByteCount.text(value)
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    /// Local time, to the second, for tables.
    static func localTime(_ date: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.string(from: date)
    }
}

/// A single progress line on standard error, redrawn twice a second.
enum ProgressLine {
    /// Runs `body` while a ticker draws `progress`; the line is cleared at the end.
    static func with<R: Sendable>(_ progress: OperationProgress?, verb: String, _ body: @Sendable () async throws -> R) async throws -> R {
        guard let progress else { return try await body() }
        return try await withThrowingTaskGroup(of: R?.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(500))
                    if Task.isCancelled { break }
                    draw(progress, verb: verb)
                }
                return nil
            }
            defer { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            let value = try await body()
            group.cancelAll()
            return value
        }
    }

    static func draw(_ progress: OperationProgress, verb: String) {
        let c = progress.counters
        let elapsed = Date().timeIntervalSince(progress.started)
        let rate = elapsed > 0 ? Double(c.bytesDone) / elapsed : 0
        var line = "[\(Output.duration(elapsed))] \(verb)"
        if c.totalsKnown && c.bytesTotal > 0 {
            let fraction = min(1, Double(c.bytesDone) / Double(c.bytesTotal))
            line += String(format: " %5.1f%%", fraction * 100)
            line += " \(c.filesDone)/\(c.filesTotal) files \(Output.bytes(c.bytesDone))/\(Output.bytes(c.bytesTotal))"
            if rate > 0 {
                line += " \(Output.bytes(UInt64(rate)))/s ETA \(Output.duration(Double(c.bytesTotal - min(c.bytesTotal, c.bytesDone)) / rate))"
            }
        } else {
            line += " \(c.filesDone) files \(Output.bytes(c.bytesDone)) \(Output.bytes(UInt64(rate)))/s"
        }
        if c.errors > 0 { line += " \(c.errors) errors" }
        var width = winsize()
        let columns = ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &width) == 0 && width.ws_col > 10 ? Int(width.ws_col) - 1 : 79
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + String(line.prefix(columns))).utf8))
    }
}

/// Reading a password with echo off.
enum Terminal {
    /// `environment` and `flag` name where the password could have come from instead.
    static func readPassword(prompt: String, confirm: Bool, environment: String = "BUNKER_PASSWORD", flag: String = "--password-file") throws -> String {
        guard isatty(STDIN_FILENO) == 1 else {
            throw BunkerError(.invalidArgument, "No password\(prompt.hasPrefix("Password of ") ? " for \(prompt.dropFirst("Password of ".count).dropLast(2))" : ""): set \(environment) or use \(flag) (standard input is not a terminal, so Bunker cannot ask).")
        }
        let first = read(prompt)
        if confirm {
            guard read("Repeat the password: ") == first else {
                throw BunkerError(.invalidArgument, "The passwords do not match.")
            }
        }
        return first
    }

    private static func read(_ prompt: String) -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var old = termios()
        tcgetattr(STDIN_FILENO, &old)
        var silent = old
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &old)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return readLine(strippingNewline: true) ?? ""
    }
}

/// Keeps glibc from mapping and unmapping a fresh region for every multi-MiB buffer, which
/// page-faults on each chunk and cuts throughput several-fold, and keeps the freed memory of the
/// buffers below that size from staying resident.
///
/// Measured on the benchmark's 1 GiB set (bench/README.md), against the former 8 MiB trim
/// threshold and two arenas: one arena and a 1 MiB trim threshold cut the peak RSS of a full
/// backup from 124 to 114 MiB and of `verify --read-data` from 91 to 86 MiB, with no loss of
/// speed (the tasks allocate little outside the large buffers, so they hardly contend for it).
func tuneAllocator() {
    // <malloc.h> is not part of the Glibc module: the constants are glibc's M_TRIM_THRESHOLD (-1),
    // M_MMAP_THRESHOLD (-3) and M_ARENA_MAX (-8).
    _ = mallopt(-3, 4 << 20)
    _ = mallopt(-1, 1 << 20)
    _ = mallopt(-8, 1)
}

@_silgen_name("mallopt")
private func mallopt(_ parameter: Int32, _ value: Int32) -> Int32
