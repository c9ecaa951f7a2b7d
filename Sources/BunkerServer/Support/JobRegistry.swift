import BunkerCore
import Foundation
import Synchronization

/// The progress counters of the jobs this server started, which only the running process knows;
/// the catalog keeps each job's state and result.
final class JobRegistry: Sendable {
    private let running = Mutex<[String: OperationProgress]>([:])

    func started(_ jobID: String, progress: OperationProgress) {
        running.withLock { $0[jobID] = progress }
    }

    func progress(of jobID: String) -> OperationProgress? {
        running.withLock { $0[jobID] }
    }
}
