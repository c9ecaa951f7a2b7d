import Foundation

/// Writes every byte of `data` to the descriptor `fd`, retrying short writes and interruptions
/// (EINTR); the one place Bunker loops over write(2).
///
/// A full disk or quota (ENOSPC, EDQUOT) is ``BunkerError/Code/storageFull``, any other failure
/// ``BunkerError/Code/sourceIO``; the message names `path` (a path or a description such as
/// "standard output") and the cause is the ``POSIXFailure`` with the call's `errno`, for callers
/// that map failures their own way (the repository's storage does).
public func writeAll(_ data: Data, to fd: Int32, path: String) throws {
    try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
        var done = 0
        while done < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                let err = errno
                if err == EINTR { continue }
                let failure = POSIXFailure(errno: err, operation: "write", path: path)
                let code: BunkerError.Code = err == ENOSPC || err == EDQUOT ? .storageFull : .sourceIO
                throw BunkerError(code, "Cannot write \(path): \(String(cString: strerror(err))).", cause: failure)
            }
            done += n
        }
    }
}
