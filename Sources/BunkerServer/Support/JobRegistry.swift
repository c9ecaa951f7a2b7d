import BunkerCore
import Foundation
import Synchronization

/// The live side of jobs this server started: their progress counters and, once done, what they
/// produced (a backup's id). The catalog keeps each job's state; this adds what only the
/// running process knows.
final class JobRegistry: Sendable {
    struct Entry: Sendable {
        var progress: OperationProgress
        var backupID: String?
    }

    private let entries = Mutex<[String: Entry]>([:])

    func started(_ jobID: String, progress: OperationProgress) {
        entries.withLock { $0[jobID] = Entry(progress: progress) }
    }

    func produced(_ jobID: String, backupID: String) {
        entries.withLock { $0[jobID]?.backupID = backupID }
    }

    func entry(_ jobID: String) -> Entry? {
        entries.withLock { $0[jobID] }
    }
}
