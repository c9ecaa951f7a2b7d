import BunkerCore
import BunkerSources
import Foundation

extension BunkerService {
    /// The postgres source whose WAL a `wal` command handles: `name`, or the only postgres
    /// source when none is named.
    public func walSource(named name: String?) throws -> String {
        let postgres = sources.filter { $0.kind == .postgres }.map(\.name)
        if let name {
            guard postgres.contains(name) else {
                throw BunkerError(.invalidArgument, "No postgres source is named \(name) in \(configuration.file ?? "the configuration")\(postgres.isEmpty ? "" : "; postgres sources: \(postgres.joined(separator: ", "))").")
            }
            return name
        }
        guard postgres.count == 1 else {
            throw BunkerError(.invalidArgument, postgres.isEmpty
                ? "No postgres source is configured: add a [[source]] table with kind = \"postgres\" to \(configuration.file ?? "bunker.toml"), and pass --config."
                : "Several postgres sources are configured (\(postgres.joined(separator: ", "))): name one with --source.")
        }
        return postgres[0]
    }

    /// Archives the WAL file at `path` for `source` (`archive_command = 'bunker wal push %p'`).
    ///
    /// Not a job and not audited per call: a push runs thousands of times a day and beside any
    /// backup. What matters is audited and notified: a file refused because its name is archived
    /// with other content, or because it comes from another cluster.
    public func pushWal(path: String, source: String) async throws -> WalPushResult {
        let file = (path as NSString).lastPathComponent
        let contents: Data
        do {
            contents = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BunkerError(.sourceIO, "Cannot read the WAL file \(path) (\(error.localizedDescription)); archive_command must pass %p, and the user PostgreSQL runs as must be able to read it.")
        }
        do {
            return try await WalArchive(repository: repository, source: source).push(file, contents: contents)
        } catch let error as BunkerError where error.code == .walConflict || error.code == .walClusterMismatch {
            await reportRefusedWal(source: source, file: file, error: error)
            throw error
        }
    }

    /// Writes the archived file `file` of `source` to `destination` (`restore_command =
    /// 'bunker wal fetch %f %p'`): into a temporary file beside it, fsynced, then renamed.
    /// Returns false, writing nothing, when the file is not archived.
    public func fetchWal(_ file: String, to destination: String, source: String) async throws -> Bool {
        guard let contents = try await WalArchive(repository: repository, source: source).fetch(file) else { return false }
        let directory = (destination as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.bunker-wal-fetch-" + UUID().uuidString
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BunkerError(.permissionDenied, "Cannot create \(temporary) to restore \(file) into: \(String(cString: strerror(errno))). restore_command must pass %p, and the user PostgreSQL runs as must be able to write there.")
        }
        do {
            defer { close(fd) }
            try writeAll(contents, to: fd, path: temporary)
            guard fsync(fd) == 0 else {
                throw BunkerError(.sourceIO, "fsync of \(temporary) failed: \(String(cString: strerror(errno))).")
            }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw BunkerError(.permissionDenied, "Cannot move the restored \(file) to \(destination): \(reason).")
        }
        return true
    }

    /// Every source's archived WAL, summarized (ranges, gaps, lag): for `stats` and metrics.
    public func walSummaries() async throws -> [WalArchiveSummary] {
        try await WalArchive.summaries(of: repository)
    }

    /// One audit row and a notification for a refused WAL file. Neither may hide the refusal:
    /// a catalog that cannot be written is reported on standard error (PostgreSQL's log).
    private func reportRefusedWal(source: String, file: String, error: BunkerError) async {
        let details = ["source": source, "file": file, "code": error.code.rawValue, "error": error.message]
        do {
            try catalog().record("wal_push", target: "\(source)/\(file)", outcome: .failure, details: details, by: .localUser())
        } catch {
            FileHandle.standardError.write(Data("bunker: warning: the refusal of \(file) could not be audited: \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
        }
        await notify(.walArchiveFailed(source: source, file: file, error: error, now: repository.now()), initiator: .localUser())
    }
}
