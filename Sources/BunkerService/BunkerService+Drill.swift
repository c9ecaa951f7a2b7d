import BunkerCore
import BunkerSources
import Foundation

/// What a restore drill found, kept as evidence for an auditor.
public struct DrillReport: Sendable, Codable {
    /// One source's part of the drill.
    public struct SourceResult: Sendable, Codable {
        public var name: String
        public var kind: String
        public var passed: Bool
        public var durationSeconds: Double
        public var checks: [DrillCheck]

        enum CodingKeys: String, CodingKey {
            case name, kind, passed, checks
            case durationSeconds = "duration_seconds"
        }
    }

    public var snapshotID: String
    public var snapshotTime: Date
    public var startedAt: Date
    public var finishedAt: Date
    /// The measured recovery time: checking and restoring everything, start to end.
    public var durationSeconds: Double
    /// The recovery point's age when the drill began: what a restore at that moment would have
    /// lost (the snapshot's time, or a point-in-time drill's target time, to the drill's start).
    public var rpoSeconds: Double
    public var passed: Bool
    /// The check of the snapshot's stored data (pack hashes and blob authentication).
    public var dataCheck: DrillCheck
    public var sources: [SourceResult]
    public var hostname: String
    public var bunkerVersion: String
    /// Where the report was written (JSON; a .txt beside it).
    public var reportPath: String?

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case snapshotTime = "snapshot_time"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case durationSeconds = "duration_seconds"
        case rpoSeconds = "rpo_seconds"
        case passed
        case dataCheck = "data_check"
        case sources, hostname
        case bunkerVersion = "bunker_version"
        case reportPath = "report_path"
    }

    /// The report as text an auditor can read and file.
    public var text: String {
        let formatter = ISO8601DateFormatter()
        var lines = [
            "Bunker restore drill: \(passed ? "PASSED" : "FAILED")",
            "Snapshot:  \(snapshotID) (taken \(formatter.string(from: snapshotTime)))",
            "Started:   \(formatter.string(from: startedAt)) on \(hostname)",
            "Finished:  \(formatter.string(from: finishedAt))",
        ]
        // A failed drill recovered nothing: its times are not a recovery time or point to
        // report to an auditor, only how long the drill ran and how old its snapshot was.
        if passed {
            lines += [
                "Measured recovery time (RTO): \(String(format: "%.1f", durationSeconds)) s",
                "Recovery point age (RPO): \(String(format: "%.0f", rpoSeconds)) s (the restored point, to the drill's start)",
            ]
        } else {
            lines += [
                "Recovery time and point (RTO, RPO): not achieved, the drill failed after \(String(format: "%.1f", durationSeconds)) s",
                "Recovery point tried: \(String(format: "%.0f", rpoSeconds)) s old at the drill's start",
            ]
        }
        lines += [
            "Bunker:    \(bunkerVersion)",
            "",
            "[\(dataCheck.passed ? "ok" : "FAILED")] stored data: \(dataCheck.detail)",
        ]
        for source in sources {
            lines.append("")
            lines.append("Source \(source.name) (\(source.kind)): \(source.passed ? "passed" : "FAILED") in \(String(format: "%.1f", source.durationSeconds)) s")
            for check in source.checks {
                lines.append("  [\(check.passed ? "ok" : "FAILED")] \(check.name): \(check.detail)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension BunkerService {
    /// Restores a snapshot (default: the newest that is not a safety copy) into scratch places,
    /// checks everything, measures the time it took, and writes the report under the data
    /// directory's `drills/`. Live data is never touched.
    ///
    /// Audited as `drill` by `actor`; a drill that runs but fails its checks ends with outcome
    /// `failure`.
    ///
    /// A physical base backup of PostgreSQL is restored into a scratch data directory and started
    /// as a private server on a free port, recovering to `recovery`'s target (default: all
    /// archived WAL); with a time target and no snapshot named, the newest base backup that
    /// ended before it is drilled.
    public func drill(snapshot reference: String?, sourceNames: [String] = [], recovery: RecoveryOptions? = nil, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> DrillReport {
        var details: [String: String] = [:]
        if let recovery { details["recovery_target"] = recovery.target.description }
        if !sourceNames.isEmpty { details["sources"] = sourceNames.joined(separator: ",") }
        return try await notifying(by: actor) { (report: DrillReport) in
            report.passed ? .drillSucceeded(report, now: repository.now()) : .drillFailed(report, error: nil, now: repository.now())
        } failure: { error in
            .drillFailed(nil, error: error, now: repository.now())
        } _: {
            try await audited("drill", target: reference ?? "latest", by: actor, details: details) {
            try await runDrill(snapshot: reference, sourceNames: sourceNames, recovery: recovery, progress: progress)
        } describe: { report in
            var details = ["rto_seconds": String(format: "%.3f", report.durationSeconds), "rpo_seconds": String(format: "%.0f", report.rpoSeconds)]
            details["report"] = report.reportPath
            return AuditedResult(outcome: report.passed ? .success : .failure, target: report.snapshotID, details: details)
            }
        }
    }

    private func runDrill(snapshot reference: String?, sourceNames: [String], recovery: RecoveryOptions?, progress: OperationProgress?) async throws -> DrillReport {
        let (id, snapshot): (ID, Snapshot)
        if let recovery {
            var request = SourceRestoreRequest(snapshot: reference ?? "latest")
            request.sourceNames = sourceNames
            request.recovery = recovery
            (id, snapshot) = try await restoredSnapshot(request)
        } else if let reference {
            (id, snapshot) = try await repository.findSnapshot(reference)
        } else {
            guard let newest = try await repository.snapshots().last(where: { $0.snapshot.sources != nil && !$0.snapshot.tags.contains("safety") }) else {
                throw BunkerError(.snapshotNotFound, "There is no snapshot of configured sources to drill; run `bunker backup` first.")
            }
            (id, snapshot) = newest
        }
        let records = (snapshot.sources ?? []).filter { sourceNames.isEmpty || sourceNames.contains($0.name) }
        for name in sourceNames where !records.contains(where: { $0.name == name }) {
            throw BunkerError(.invalidArgument, "Snapshot \(id.short) holds no source named \(name).")
        }
        let scratch = try configuration.scratchDirectory()
        let started = repository.now()
        let restoredPoint: Date = if case .time(let target)? = recovery?.target { max(snapshot.time, min(target, started)) } else { snapshot.time }
        let clock = ContinuousClock.now

        let report = try await repository.withLock(exclusive: false) {
            let check = try await Checker(repository: repository, progress: nil).check(snapshot: id, roots: snapshot.sources == nil ? nil : Set(records.map(\.name)))
            let dataCheck: DrillCheck
            if check.ok {
                dataCheck = DrillCheck(name: "stored_data", passed: true, detail: "\(check.packsRead) packs (\(check.bytesRead) bytes) read; every SHA-256 matches and every blob authenticates.")
            } else {
                let issues = check.errors.map { issue in
                    issue.message + (issue.affected.isEmpty ? "" : " Affects: \(issue.affected.prefix(10).map(\.path).joined(separator: ", ")).")
                }
                dataCheck = DrillCheck(name: "stored_data", passed: false, detail: issues.joined(separator: " "))
            }
            let root = try await repository.loadTree(snapshot.tree)
            var results: [DrillReport.SourceResult] = []
            for record in records {
                var context = RestoreContext(loader: repository, scratch: scratch, progress: progress)
                context.recovery = self.recoveryOptions(recovery, source: record.name)
                let sourceClock = ContinuousClock.now
                var checks: [DrillCheck]
                if record.isPhysicalBaseBackup, recovery == nil, let refusal = await self.walPathRefusal(record, snapshot: id) {
                    // Recovery would stop at a gap and the drill would pass on what came before.
                    checks = [DrillCheck(name: "wal_archive", passed: false, detail: refusal)]
                } else if let node = root.node(named: record.name) {
                    do {
                        checks = try await self.source(for: record).drill(node, record: record, context: context)
                    } catch let error as BunkerError {
                        checks = [DrillCheck(name: "restore", passed: false, detail: error.message)]
                    }
                } else {
                    checks = [DrillCheck(name: "restore", passed: false, detail: "The snapshot holds no data for this source.")]
                }
                results.append(DrillReport.SourceResult(
                    name: record.name, kind: record.kind, passed: checks.allSatisfy(\.passed),
                    durationSeconds: Self.seconds(since: sourceClock), checks: checks))
            }
            return DrillReport(
                snapshotID: id.hex, snapshotTime: snapshot.time, startedAt: started, finishedAt: repository.now(),
                durationSeconds: Self.seconds(since: clock), rpoSeconds: max(0, started.timeIntervalSince(restoredPoint)), passed: dataCheck.passed && results.allSatisfy(\.passed),
                dataCheck: dataCheck, sources: results, hostname: HostIdentity.name,
                bunkerVersion: bunkerVersion, reportPath: nil)
        }
        return try save(report)
    }

    /// Why a drill of the base backup `record` to the latest state could not reach it (a gap in
    /// the archived WAL after it, or an archive that cannot be read); nil when it can.
    private func walPathRefusal(_ record: SnapshotSource, snapshot: ID) async -> String? {
        do {
            try Self.checkWalPath(try await recoveryPath(of: record.name), record: record, target: .latest, source: record.name, snapshot: snapshot)
            return nil
        } catch let error as BunkerError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    /// Writes the report as JSON and text under `drills/`; returns it with its path.
    private func save(_ report: DrillReport) throws -> DrillReport {
        var report = report
        let dir = configuration.dataDirectory + "/drills"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let stamp = ISO8601DateFormatter().string(from: report.startedAt).replacingOccurrences(of: ":", with: "")
        let base = "\(dir)/drill-\(stamp)-\(report.snapshotID.prefix(8))"
        report.reportPath = base + ".json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(report).write(to: URL(fileURLWithPath: base + ".json"), options: .atomic)
        try Data(report.text.utf8).write(to: URL(fileURLWithPath: base + ".txt"), options: .atomic)
        return report
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }
}
