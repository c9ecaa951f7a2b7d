import BunkerCore
import BunkerSources
import Foundation

/// What `wal push` did with a file.
public enum WalPushOutcome: Sendable {
    /// Archived into the repository (or found archived, identical).
    case archived(WalPushResult)
    /// Copied into the local spool, durably; a drainer ships it.
    case spooled(file: String, size: Int)
    /// Waiting in the spool already with the same content.
    case alreadySpooled(file: String, size: Int)
}

extension BunkerService {
    /// The postgres source whose WAL a `wal` command handles: `name`, or the only postgres
    /// source when none is named.
    public func walSource(named name: String?) throws -> String {
        try Self.walSource(in: configuration, named: name)
    }

    /// The postgres source of `configuration` named `name`, or its only one.
    public static func walSource(in configuration: Configuration, named name: String?) throws -> String {
        let postgres = configuration.sources.filter { $0.kind == .postgres }.map(\.name)
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
    ///
    /// With `[source.wal] async = true` the file is copied into the local spool (fsynced) and the
    /// call returns ``WalPushOutcome/spooled``: the caller starts a drainer (``drainWal(source:)``)
    /// if none runs. A full spool is never skipped silently: the file is archived synchronously,
    /// as without a spool, and the overflow is audited and notified once per episode.
    public func pushWal(path: String, source: String) async throws -> WalPushOutcome {
        let file = (path as NSString).lastPathComponent
        let contents: Data
        do {
            contents = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BunkerError(.sourceIO, "Cannot read the WAL file \(path) (\(error.localizedDescription)); archive_command must pass %p, and the user PostgreSQL runs as must be able to read it.")
        }
        if let spool = walSpool(source: source), WalFileName(file) != nil {
            let outcome: WalSpool.Outcome
            do {
                outcome = try spool.spool(file, contents: contents)
            } catch let error as BunkerError where error.code == .walConflict {
                // A push stopped by a file refused earlier: that refusal was audited and notified
                // when the drainer met it; PostgreSQL's retries of every later file are not.
                if spool.refused().isEmpty { await reportRefusedWal(source: source, file: file, error: error) }
                throw error
            }
            switch outcome {
            case .spooled: return .spooled(file: file, size: contents.count)
            case .alreadySpooled: return .alreadySpooled(file: file, size: contents.count)
            case .full: await reportSpoolFull(spool, source: source, file: file)
            }
        }
        return .archived(try await archiveWal(file, contents: contents, source: source))
    }

    /// The fast path of an asynchronous `wal push`: spools the file without opening the
    /// repository (no key derivation, no listing), so that it returns in milliseconds. Nil when
    /// the source has no spool, the spool is full, or anything goes wrong: the caller then runs
    /// ``pushWal(path:source:)``, which reports each of those as it must.
    public static func spoolWal(path: String, source: String, configuration: Configuration) -> WalPushOutcome? {
        let file = (path as NSString).lastPathComponent
        guard let spool = walSpool(in: configuration, source: source), WalFileName(file) != nil,
              let contents = FileManager.default.contents(atPath: path) else { return nil }
        switch try? spool.spool(file, contents: contents) {
        case .spooled?: return .spooled(file: file, size: contents.count)
        case .alreadySpooled?: return .alreadySpooled(file: file, size: contents.count)
        case .full?, nil: return nil
        }
    }

    /// Archives one file into the repository; a refusal is audited and notified.
    private func archiveWal(_ file: String, contents: Data, source: String) async throws -> WalPushResult {
        do {
            let result = try await WalArchive(repository: repository, source: source).push(file, contents: contents)
            await auditDailyWalSummaryIfDue(source: source)
            return result
        } catch let error as BunkerError where error.code == .walConflict || error.code == .walClusterMismatch {
            await reportRefusedWal(source: source, file: file, error: error)
            throw error
        }
    }

    /// The spool of `source`, when its WAL is archived asynchronously.
    public func walSpool(source: String) -> WalSpool? {
        Self.walSpool(in: configuration, source: source)
    }

    /// The spool of `source` in `configuration`, when its WAL is archived asynchronously.
    public static func walSpool(in configuration: Configuration, source: String) -> WalSpool? {
        guard let settings = (configuration.sources.first { $0.name == source } as? PostgresSource)?.walArchiving,
              settings.async, let root = settings.spoolDirectory else { return nil }
        return WalSpool(root: root, source: source, capacity: settings.spoolMax)
    }

    /// Ships every spooled file of `source` to the repository, `parallel` at a time, removing
    /// each from the spool once the repository holds it; returns how many were shipped, or nil
    /// when another drainer runs. Keeps going until the spool stays empty for `linger`; a
    /// repository out of reach is retried with growing waits (the spool keeps filling meanwhile).
    public func drainWal(source: String, parallel: Int = 4, linger: Duration = .seconds(2)) async throws -> Int? {
        guard let spool = walSpool(source: source) else {
            throw BunkerError(.invalidArgument, "Source \(source) does not archive WAL asynchronously ([source.wal] async = true and spool_dir), so there is no spool to drain.")
        }
        return try await spool.withDrainLock {
            var shipped = 0
            var idleSince = ContinuousClock.now
            var backoff = Duration.milliseconds(500)
            var refused: Set<String> = []
            while true {
                let waiting = try spool.pending().filter { !refused.contains($0) }
                if waiting.isEmpty {
                    // The overflow episode is over: a later one is reported again.
                    unlink(spool.directory + "/.overflow")
                    if ContinuousClock.now - idleSince >= linger { return shipped }
                    try await Task.sleep(for: .milliseconds(200))
                    continue
                }
                // History files go alone and first: segments of their timeline are checked against them.
                let batch = waiting[0].hasSuffix(".history") ? [waiting[0]] : Array(waiting.prefix(parallel))
                let results = await withTaskGroup(of: (String, (any Error)?).self) { group in
                    for file in batch {
                        group.addTask {
                            guard let contents = spool.contents(of: file) else { return (file, nil) }
                            do {
                                _ = try await self.archiveWal(file, contents: contents, source: source)
                                try spool.remove(file)
                                return (file, nil)
                            } catch {
                                return (file, error)
                            }
                        }
                    }
                    var results: [(String, (any Error)?)] = []
                    for await result in group { results.append(result) }
                    return results
                }
                var failed = false
                for (file, error) in results {
                    guard let error else {
                        shipped += 1
                        continue
                    }
                    if let error = error as? BunkerError, error.code == .walConflict || error.code == .walClusterMismatch {
                        // Audited and notified already. Out of the spool, so that `wal fetch`
                        // never serves it, and in sight: every later push fails until an
                        // operator has looked.
                        refused.insert(file)
                        do {
                            try spool.refuse(file, reason: error.message)
                        } catch {
                            FileHandle.standardError.write(Data("bunker wal drain: \(file) was refused and could not be moved aside: \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
                        }
                        FileHandle.standardError.write(Data("bunker wal drain: \(file) refused: \(error.message)\n".utf8))
                    } else {
                        failed = true
                        FileHandle.standardError.write(Data("bunker wal drain: \(file): \((error as? BunkerError)?.message ?? "\(error)") (will retry)\n".utf8))
                    }
                }
                if failed {
                    try await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(30))
                } else {
                    backoff = .milliseconds(500)
                }
                idleSince = ContinuousClock.now
            }
        }
    }

    /// Writes the archived file `file` of `source` to `destination` (`restore_command =
    /// 'bunker wal fetch %f %p'`): into a temporary file beside it, fsynced, then renamed.
    /// Returns false, writing nothing, when the file is not archived.
    public func fetchWal(_ file: String, to destination: String, source: String) async throws -> Bool {
        // A file still in the spool is not in the repository yet.
        let contents: Data
        if let spooled = walSpool(source: source)?.contents(of: file) {
            contents = spooled
        } else if let archived = try await WalArchive(repository: repository, source: source).fetch(file) {
            contents = archived
        } else {
            return false
        }
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

    /// The `archive_command` for `source`: `bunker --config FILE wal push --source NAME %p`,
    /// with the absolute path of `executable` (by default this very binary) and of the
    /// configuration, since PostgreSQL runs it with its own environment. Each word is quoted for
    /// `/bin/sh` where needed; whoever writes it into postgresql.conf doubles every `'`.
    public static func walArchiveCommand(_ configuration: Configuration, source: String, executable: String = BunkerService.currentExecutable) -> String {
        walCommand(configuration, executable, ["wal", "push", "--source", source]) + " %p"
    }

    /// The `restore_command` for `source`: `bunker --config FILE wal fetch --source NAME %f %p`
    /// (see ``walArchiveCommand(_:source:executable:)``).
    public static func walRestoreCommand(_ configuration: Configuration, source: String, executable: String = BunkerService.currentExecutable) -> String {
        walCommand(configuration, executable, ["wal", "fetch", "--source", source]) + " %f %p"
    }

    /// The absolute path of the running `bunker`.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    private static func walCommand(_ configuration: Configuration, _ executable: String, _ words: [String]) -> String {
        var all = [executable]
        if let file = configuration.file { all += ["--config", URL(fileURLWithPath: file).standardizedFileURL.path] }
        return (all + words).map(shellWord).joined(separator: " ")
    }

    /// `word` as /bin/sh reads it back: as it is when it is made only of safe characters, else
    /// in single quotes.
    static func shellWord(_ word: String) -> String {
        let safe = word.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "/._-=:+,@%".unicodeScalars.contains($0) }
        return safe && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Every source's archived WAL, summarized (ranges, gaps, lag): for `stats` and metrics.
    public func walSummaries() async throws -> [WalArchiveSummary] {
        try await WalArchive.summaries(of: repository)
    }

    /// Audits and notifies a full spool once per episode (until the spool has room again, which
    /// removes the marker); the file itself is then archived synchronously, so nothing is lost.
    private func reportSpoolFull(_ spool: WalSpool, source: String, file: String) async {
        let marker = spool.directory + "/.overflow"
        FileHandle.standardError.write(Data("bunker: warning: the WAL spool of \(source) is full (\(spool.capacity) files); \(file) is archived synchronously.\n".utf8))
        guard !FileManager.default.fileExists(atPath: marker) else { return }
        _ = FileManager.default.createFile(atPath: marker, contents: Data(file.utf8))
        let error = BunkerError(.storageFull, "The WAL spool \(spool.directory) holds \(spool.capacity) files (spool_max): the drainer does not keep up or cannot reach the repository. Files are archived synchronously meanwhile; if that fails too, PostgreSQL keeps them in pg_wal and retries.")
        do {
            try catalog().record("wal_spool_full", target: source, outcome: .failure, details: ["source": source, "file": file, "spool_max": String(spool.capacity)], by: .localUser())
        } catch {
            FileHandle.standardError.write(Data("bunker: warning: the full WAL spool could not be audited: \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
        }
        await notify(.walArchiveFailed(source: source, file: file, error: error, now: repository.now()), initiator: .localUser())
    }

    /// The first archived file of each UTC day writes one audit row, `wal_summary`, with what the
    /// source's archive holds (files, the range per timeline, gaps, lag): the trail shows that
    /// archiving ran every day without a row per segment. A marker file in the data directory
    /// (`wal-summary-<scope>`, holding the day) keeps it to one a day. Never fails the push: a
    /// data directory PostgreSQL's user cannot write only loses the summary.
    private func auditDailyWalSummaryIfDue(source: String) async {
        let day = String(Timestamp.format(repository.now()).prefix(10))
        let marker = configuration.dataDirectory + "/wal-summary-" + WalObject.scope(of: source)
        if let written = try? String(contentsOfFile: marker, encoding: .utf8), written == day { return }
        do {
            // Opening the catalog makes the data directory, where the marker goes.
            let catalog = try catalog()
            try Data(day.utf8).write(to: URL(fileURLWithPath: marker), options: .atomic)
            let summary = try await WalArchive(repository: repository, source: source).summary()
            var details = ["source": source, "files": String(summary.objects), "stored_bytes": String(summary.storedBytes),
                           "gaps": String(summary.gaps.count), "day": day]
            for timeline in summary.timelines { details["timeline_\(timeline.timeline)"] = "\(timeline.firstSegment)..\(timeline.lastSegment)" }
            if let lag = summary.archiveLagSeconds { details["archive_lag_seconds"] = String(Int(lag)) }
            try catalog.record("wal_summary", target: source, outcome: summary.gaps.isEmpty ? .success : .failure, details: details, by: .localUser())
        } catch {
            FileHandle.standardError.write(Data("bunker: warning: the daily WAL summary of \(source) was not audited: \((error as? BunkerError)?.message ?? "\(error)")\n".utf8))
        }
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
