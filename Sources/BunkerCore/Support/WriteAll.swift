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
                throw BunkerError.writing(POSIXFailure(errno: err, operation: "write", path: path))
            }
            done += n
        }
    }
}

extension BunkerError {
    /// A failed write of `failure.path`: ``Code/storageFull`` for a full disk or quota (ENOSPC,
    /// EDQUOT), ``Code/sourceIO`` otherwise, the failure as the cause.
    public static func writing(_ failure: POSIXFailure) -> BunkerError {
        let code: BunkerError.Code = failure.errno == ENOSPC || failure.errno == EDQUOT ? .storageFull : .sourceIO
        return BunkerError(code, "Cannot write \(failure.path): \(String(cString: strerror(failure.errno))).", cause: failure)
    }
}
