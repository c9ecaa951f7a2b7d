import BunkerCore
import BunkerSources
import Foundation

/// Streaming a source's WAL (`[source.wal] stream = true`), run by `bunker serve` and by
/// `bunker wal stream`: `pg_receivewal` receives the WAL as the server writes it
/// (``WalReceiver``), and every `stream_interval` seconds the segment being written is stored
/// in the repository (``WalArchive/pushStreamed(_:contents:)``), replacing the previous copy. A
/// restore after the server is lost then recovers up to a few seconds before the loss, where
/// `archive_command` alone reaches only the last complete segment (or `archive_timeout`).
///
/// Streaming adds to `archive_command`, it does not replace it: complete segments are still
/// archived by the server, and a streamed copy is removed once its segment is archived whole.
extension BunkerService {
    /// The sources whose WAL is streamed.
    public var streamedWalSources: [String] {
        configuration.sources.compactMap { source in
            guard let postgres = source as? PostgresSource, postgres.walArchiving.stream else { return nil }
            return postgres.name
        }
    }

    /// Streams `source`'s WAL until cancelled, restarting `pg_receivewal` (after 1 s, doubling to
    /// a minute) whenever it ends. `rounds` stops after that many uploads rounds (for tests).
    public func streamWal(source: String, rounds: Int? = nil) async throws {
        guard let postgres = configuration.sources.first(where: { $0.name == source }) as? PostgresSource,
              case let settings = postgres.walArchiving, settings.stream else {
            throw BunkerError(.invalidArgument, "Source \(source) does not stream its WAL: set stream = true in its [source.wal] table (docs/postgres-pitr.md, \"Streaming\").")
        }
        let directory = (settings.streamDirectory ?? configuration.dataDirectory + "/wal-stream") + "/" + WalObject.scope(of: source)
        let receiver = try WalReceiver(source: postgres, directory: directory)
        defer { receiver.stop() }
        let archive = WalArchive(repository: repository, source: source)
        var shipped: [String: Date] = [:]
        var retry = Duration.seconds(1)
        var nextStart = ContinuousClock.now
        var lastCleanup = ContinuousClock.now
        var round = 0
        while !Task.isCancelled, rounds.map({ round < $0 }) ?? true {
            if !receiver.isRunning, ContinuousClock.now >= nextStart {
                if round > 0 {
                    FileHandle.standardError.write(Data("bunker: pg_receivewal of source \(source) ended (it said: \(receiver.lastWords)); starting it again in \(retry).\n".utf8))
                }
                do {
                    try receiver.start()
                } catch {
                    FileHandle.standardError.write(Data("bunker: pg_receivewal of source \(source) did not start: \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
                }
                nextStart = ContinuousClock.now + retry
                retry = min(retry * 2, .seconds(60))
            }
            do {
                if try await shipStreamed(receiver, archive, shipped: &shipped) { retry = .seconds(1) }
                if ContinuousClock.now - lastCleanup > .seconds(60) {
                    try await archive.removeStreamedCopiesOfArchivedSegments()
                    lastCleanup = ContinuousClock.now
                }
            } catch {
                FileHandle.standardError.write(Data("bunker: streamed WAL of source \(source) not stored: \((error as? BunkerError)?.message ?? "\(error)") (will retry)\n".utf8))
            }
            round += 1
            try? await Task.sleep(for: .seconds(settings.streamInterval))
        }
    }

    /// Stores every complete segment `pg_receivewal` left (then deletes it), and the one being
    /// written when it changed since it was last stored; returns whether anything was stored.
    private func shipStreamed(_ receiver: WalReceiver, _ archive: WalArchive, shipped: inout [String: Date]) async throws -> Bool {
        let (complete, partial) = receiver.files()
        var stored = false
        for segment in complete {
            let path = receiver.directory + "/" + segment
            try await archive.pushStreamed(segment, contents: try Data(contentsOf: URL(fileURLWithPath: path)))
            unlink(path)
            shipped.removeValue(forKey: segment)
            stored = true
        }
        guard let partial else { return stored }
        let path = receiver.directory + "/" + partial
        let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date()
        let segment = String(partial.dropLast(".partial".count))
        guard shipped[segment] != modified else { return stored }
        // Read before storing: a write landing meanwhile has a later time and goes next round.
        let contents = try Data(contentsOf: URL(fileURLWithPath: path))
        try await archive.pushStreamed(segment, contents: contents)
        shipped[segment] = modified
        return true
    }
}
