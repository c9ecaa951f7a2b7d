import BunkerCore
import BunkerTesting
import Foundation
import Testing

@Suite struct WriteAllTests {
    @Test func everyByteReachesTheFile() async throws {
        try await withTemporaryDirectory { dir in
            var rng = SeededGenerator(seed: 5)
            let data = rng.bytes(3 << 20)
            let path = dir + "/out"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            try #require(fd >= 0)
            try writeAll(data, to: fd, path: path)
            try writeAll(Data(), to: fd, path: path)
            close(fd)
            #expect(FileManager.default.contents(atPath: path) == data)
        }
    }

    /// A megabyte through a pipe of 64 KiB, with a reader taking 7,000 bytes at a time: every
    /// byte arrives, in order.
    @Test func aWriteLargerThanAPipeArrivesWhole() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        var rng = SeededGenerator(seed: 6)
        let data = rng.bytes(1 << 20)
        let received = Received()
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 7000)
            while true {
                let n = read(readEnd, &buffer, buffer.count)
                if n <= 0 { break }
                received.append(buffer[0..<n])
            }
            close(readEnd)
            received.finish()
        }
        reader.start()
        try writeAll(data, to: writeEnd, path: "the pipe")
        close(writeEnd)
        received.wait()
        #expect(received.data == data)
    }

    @Test func aFullDiskIsStorageFullNamingThePath() throws {
        let fd = open("/dev/full", O_WRONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect {
            try writeAll(Data(repeating: 1, count: 10), to: fd, path: "/dev/full")
        } throws: { error in
            guard let error = error as? BunkerError, let cause = error.cause as? POSIXFailure else { return false }
            return error.code == .storageFull && cause.errno == ENOSPC && cause.operation == "write"
                && error.message.hasPrefix("Cannot write /dev/full: ")
        }
    }

    @Test func anyOtherFailureIsSourceIOWithItsErrno() throws {
        #expect {
            try writeAll(Data([1, 2, 3]), to: -1, path: "nowhere")
        } throws: { error in
            guard let error = error as? BunkerError, let cause = error.cause as? POSIXFailure else { return false }
            return error.code == .sourceIO && cause.errno == EBADF && cause.path == "nowhere"
        }
    }
}

/// Bytes a reader thread collected, handed to the test when the writer closed the pipe.
private final class Received: @unchecked Sendable {
    private let condition = NSCondition()
    private var collected = Data()
    private var done = false

    func append(_ bytes: ArraySlice<UInt8>) {
        condition.lock()
        collected.append(contentsOf: bytes)
        condition.unlock()
    }

    func finish() {
        condition.lock()
        done = true
        condition.broadcast()
        condition.unlock()
    }

    func wait() {
        condition.lock()
        while !done { condition.wait() }
        condition.unlock()
    }

    var data: Data {
        condition.lock()
        defer { condition.unlock() }
        return collected
    }
}
