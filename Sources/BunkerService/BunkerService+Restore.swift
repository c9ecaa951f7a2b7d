import BunkerCore
import BunkerSources
import Foundation

/// Where a restore of configured sources goes.
public enum RestoreTarget: Sendable, Equatable {
    /// Over the live data, after a check and a safety backup.
    case inPlace
    /// Every selected source under a directory, as `DIR/NAME`; the live data is not touched.
    case directory(String)
    /// One SQLite source to this database file.
    case sqliteFile(String)
    /// One PostgreSQL source into this database.
    case database(String)
    /// One PostgreSQL source as a plain SQL file (`-` for standard output).
    case sql(String)
    /// One PostgreSQL source's physical base backup into this new data directory, set up for
    /// point-in-time recovery (see ``SourceRestoreRequest/recovery``).
    case pgdata(String)
}

/// A restore of sources from a snapshot.
public struct SourceRestoreRequest: Sendable {
    public var snapshot: String
    public var type: BackupType = .full
    public var sourceNames: [String] = []
    public var target: RestoreTarget = .inPlace
    /// Take a safety backup of the live data first (only for ``RestoreTarget/inPlace``).
    public var safetyBackup = true
    /// Why the restore is done, recorded in the audit trail (an electronic signature's meaning).
    public var reason: String?
    /// The electronic signature that approved the restore, recorded in its audit rows.
    public var signature: ElectronicSignature?
    /// Set when a server whose `[server] restore_signature` is `optional` let the restore run
    /// unsigned: the audit rows say so.
    public var signatureWaived = false
    /// For a physical base backup: the recovery target, and whether to start the server. Its
    /// ``RecoveryOptions/walFetch`` is filled in by the service. With a time target and the
    /// snapshot `latest`, the newest base backup that ended before the target is restored.
    public var recovery: RecoveryOptions?

    public init(snapshot: String) {
        self.snapshot = snapshot
    }
}

/// A user's re-entered password, checked just now, bound to what it approves (21 CFR Part 11
/// style): who signed (full name), when (UTC) and the meaning of the signature.
public struct ElectronicSignature: Sendable, Equatable {
    public var signerName: String
    public var signedAt: Date
    /// Such as `approved restore`.
    public var meaning: String

    public init(signerName: String, signedAt: Date, meaning: String) {
        self.signerName = signerName
        self.signedAt = signedAt
        self.meaning = meaning
    }
}

/// What a restore did.
public struct RestoreOutcome: Sendable, Codable {
    public var snapshotID: String
    /// The snapshot holding the live data as it was just before the restore.
    public var safetySnapshotID: String?
    public var sources: [SourceRestoreResult] = []
    /// Packs read and checked before anything was restored.
    public var packsChecked = 0
    public var warnings: [String] = []

    enum CodingKeys: String, CodingKey {
        case snapshotID = "snapshot_id"
        case safetySnapshotID = "safety_snapshot_id"
        case sources
        case packsChecked = "packs_checked"
        case warnings
    }
}

extension BunkerService {
    /// What `restore latest` restores: the newest snapshot that is not a safety copy and holds
    /// every source named (`--source`). A restore's own safety copy is the newest snapshot right
    /// after it, and holds only the sources that restore replaced: `restore latest` would
    /// otherwise bring back what the last restore replaced, or find the next source missing. A
    /// safety copy is restored by its id.
    public func latestRestorable(holding names: [String]) async throws -> (id: ID, snapshot: Snapshot) {
        let all = try await repository.snapshots()
        if let found = all.last(where: { entry in
            guard !entry.snapshot.tags.contains("safety") else { return false }
            return names.allSatisfy { name in entry.snapshot.sources?.contains { $0.name == name } == true }
        }) {
            return found
        }
        guard !all.isEmpty else {
            throw BunkerError(.snapshotNotFound, "The repository has no snapshots yet; run `bunker backup` first.")
        }
        let which = names.isEmpty ? "" : " holding source\(names.count == 1 ? "" : "s") \(names.joined(separator: ", "))"
        throw BunkerError(.snapshotNotFound, "The repository holds no backup\(which) but safety copies; give a snapshot id (`bunker snapshots` lists them, safety copies tagged safety).")
    }

    /// Restores sources from a snapshot, the safe way.
    ///
    /// 1. The data the restore needs is checked first: every pack it reads must hash to its name
    ///    and every blob authenticate (nothing live is touched if not).
    /// 2. For a restore in place, a safety backup of the current state is taken (a snapshot tagged
    ///    `safety`), unless the caller declines.
    /// 3. Each source restores: databases first, then file trees; each stages its data beside
    ///    the live data, checks it, and swaps it in.
    /// A failure at any step names the safety snapshot that holds the state before the attempt.
    ///
    /// Audited as `restore` by `actor`, with the request's reason; the safety backup is audited
    /// as a backup of its own, inside the restore.
    public func restore(_ request: SourceRestoreRequest, by actor: AuditActor = .localUser(), progress: OperationProgress? = nil) async throws -> RestoreOutcome {
        try await notifying(by: actor) { outcome in
            .restoreSucceeded(outcome, reason: request.reason, now: repository.now())
        } failure: { error in
            .restoreFailed(error, request: request, now: repository.now())
        } _: {
            try await auditedRestore(request, by: actor, progress: progress)
        }
    }

    private func auditedRestore(_ request: SourceRestoreRequest, by actor: AuditActor, progress: OperationProgress?) async throws -> RestoreOutcome {
        try await audited("restore", target: request.snapshot, by: actor, reason: request.reason, details: Self.auditDetails(of: request)) {
            try await runRestore(request, by: actor, progress: progress)
        } describe: { outcome in
            var details = ["sources": outcome.sources.map(\.source).joined(separator: ",")]
            details["safety_snapshot"] = outcome.safetySnapshotID
            return AuditedResult(target: outcome.snapshotID, details: details)
        }
    }

    /// Restores a snapshot's tree as it is stored (a backup of plain paths, or part of any
    /// snapshot) under `target`; audited as `restore`.
    /// `signature`, when the restore was signed (the console's), is recorded with it.
    public func restoreTree(
        snapshot reference: String, includes: [String] = [], to target: String, by actor: AuditActor = .localUser(), reason: String? = nil,
        signature: ElectronicSignature? = nil, progress: OperationProgress? = nil
    ) async throws -> RestoreReport {
        var details = ["destination": "directory:" + target]
        if !includes.isEmpty { details["include"] = includes.joined(separator: ",") }
        if let signature { details.merge(Self.signatureDetails(signature)) { $1 } }
        return try await audited("restore", target: reference, by: actor, reason: reason, details: details) {
            let (id, snapshot) = try await repository.findSnapshot(reference)
            if let progress, let total = snapshot.summary?.totalBytes, includes.isEmpty {
                progress.update {
                    $0.bytesTotal = total
                    $0.filesTotal = snapshot.summary?.totalFiles ?? 0
                    $0.totalsKnown = true
                }
            }
            let restorer = Restorer(loader: repository, includes: includes, progress: progress)
            let report = try await repository.withLock(exclusive: false) { try await restorer.restore(tree: snapshot.tree, to: target) }
            return (id, report)
        } describe: { restored in
            let report = restored.1
            return AuditedResult(
                outcome: report.failures.isEmpty ? .success : .failure, target: restored.0.hex,
                details: ["files": String(report.filesRestored), "bytes": String(report.bytesRestored), "failures": String(report.failures.count)])
        }.1
    }

    /// What the audit trail records of an electronic signature: who, when, meaning what.
    static func signatureDetails(_ signature: ElectronicSignature) -> [String: String] {
        ["signed_by": signature.signerName, "signed_at": Timestamp.format(signature.signedAt), "signature_meaning": signature.meaning]
    }

    static func auditDetails(of request: SourceRestoreRequest) -> [String: String] {
        var details = ["backup_type": request.type.rawValue, "safety_backup": String(request.safetyBackup)]
        if !request.sourceNames.isEmpty { details["sources"] = request.sourceNames.joined(separator: ",") }
        if let signature = request.signature { details.merge(signatureDetails(signature)) { $1 } }
        if request.signatureWaived && request.signature == nil { details["signature"] = "none: not signed ([server] restore_signature = optional)" }
        switch request.target {
        case .inPlace: details["destination"] = "in place"
        case .directory(let dir): details["destination"] = "directory:" + dir
        case .sqliteFile(let path): details["destination"] = "sqlite:" + path
        case .database(let name): details["destination"] = "database:" + name
        case .sql(let path): details["destination"] = "sql:" + path
        case .pgdata(let path): details["destination"] = "pgdata:" + path
        }
        if let recovery = request.recovery { details["recovery_target"] = recovery.target.description }
        return details
    }

    /// Whether `source` has live data a restore would overwrite. A source that cannot say (a
    /// server that does not answer) stops the restore: skipping its safety backup could lose
    /// the live data.
    private func liveDataExists(_ source: any Source) async throws -> Bool {
        do {
            return try await source.liveDataExists()
        } catch let error as BunkerError {
            // The message carries the error's own; its cause, not the error, goes on (else the
            // text says the same thing twice).
            throw BunkerError(error.code, "\(error.message) Nothing was restored, and the live data is unchanged: make the source reachable and try again.", cause: error.cause)
        }
    }

    private func runRestore(_ request: SourceRestoreRequest, by actor: AuditActor, progress: OperationProgress?) async throws -> RestoreOutcome {
        let (id, snapshot) = try await restoredSnapshot(request)
        guard let records = snapshot.sources else {
            throw BunkerError(.invalidArgument, "Snapshot \(id.short) is a backup of plain paths, not of configured sources; restore it with --target DIR.")
        }
        for name in request.sourceNames where !records.contains(where: { $0.name == name }) {
            throw BunkerError(.invalidArgument, "Snapshot \(id.short) holds no source named \(name); it holds \(records.map(\.name).joined(separator: ", ")).")
        }
        let selected = records.filter {
            (request.sourceNames.isEmpty || request.sourceNames.contains($0.name)) && request.type.includes($0.sourceKind)
        }
        guard !selected.isEmpty else {
            throw BunkerError(.invalidArgument, "Snapshot \(id.short) holds no source matching --type \(request.type.rawValue).")
        }
        // Names from the snapshot build paths below: refuse any that is not one plain name
        // before anything is created (`bunker verify` reports such a snapshot as damaged).
        for record in selected {
            if let problem = record.pathProblem {
                throw BunkerError(.integrity, "Snapshot \(id.short) \(problem), so nothing was restored. `bunker verify` reports it as damaged.")
            }
        }
        let destinations = try destinations(for: selected, target: request.target)
        let scratch = try configuration.scratchDirectory()
        // What the restore overwrites: in place, or the live data named another way
        // (`--to-database` naming the source's own database).
        let overwritten = selected.compactMap { record in
            sources.first { $0.name == record.name && destinations[record.name].map($0.overwritesLiveData) == true }
        }
        if repository.isReadOnly && request.safetyBackup {
            // No safety backup can be stored: refuse before reading anything if one is needed.
            // Onto a new machine's empty sources (the DermAI scenario 4) none is.
            for source in overwritten where try await liveDataExists(source) {
                throw ReadOnlyStorage.refusal("restore over the live data of \(source.name), which takes a safety backup into the repository first; nothing was restored. Restore to a new place instead (--target DIR, --to FILE, --to-database NAME, --sql FILE or --pgdata DIR)")
            }
        }

        return try await repository.withLock(exclusive: false) {
            var outcome = RestoreOutcome(snapshotID: id.hex)
            // 1. Check before touching anything.
            progress?.update { $0.currentPath = "checking snapshot \(id.short)" }
            let report = try await Checker(repository: repository).check(snapshot: id, roots: Set(selected.map(\.name)))
            guard report.ok else {
                let issues = report.errors.prefix(5).map { issue in
                    issue.message + (issue.affected.isEmpty ? "" : " Affects: \(issue.affected.prefix(5).map(\.path).joined(separator: ", "))")
                }
                throw BunkerError(.integrity, "Snapshot \(id.short) is damaged, so nothing was restored and the live data is unchanged: \(issues.joined(separator: " "))")
            }
            outcome.packsChecked = report.packsRead

            // 2. Safety backup of what is about to be overwritten.
            if !overwritten.isEmpty {
                if request.safetyBackup {
                    var live: [String] = []
                    for source in overwritten where try await liveDataExists(source) {
                        live.append(source.name)
                    }
                    if !live.isEmpty {
                        progress?.update { $0.currentPath = "safety backup" }
                        outcome.safetySnapshotID = try await safetyBackup(of: live, before: id, by: actor)
                    }
                } else {
                    outcome.warnings.append("No safety backup was taken (--no-safety-backup): the data this restore overwrote cannot be recovered from Bunker.")
                }
            }

            // 3. Restore, databases first: they are the ones that can refuse (a failed load rolls back).
            FaultPoints.hit("restore-after-safety-backup")
            let root = try await repository.loadTree(snapshot.tree)
            var safetyRoot: Tree?
            if let safety = outcome.safetySnapshotID.flatMap(ID.init(hex:)) {
                safetyRoot = try await repository.loadTree(try await repository.loadSnapshot(safety).tree)
            }
            let ordered = selected.filter(\.sourceKind.isDatabase) + selected.filter { !$0.sourceKind.isDatabase }
            for record in ordered {
                guard let node = root.node(named: record.name) else {
                    throw failure(BunkerError(.corruptObject, "Snapshot \(id.short) lists source \(record.name) but holds no data for it."), outcome: outcome, source: record.name)
                }
                var context = RestoreContext(loader: repository, scratch: scratch, progress: progress)
                context.recovery = recoveryOptions(request.recovery, source: record.name)
                if let safety = outcome.safetySnapshotID {
                    // What the restore may replace of this source: what the safety snapshot holds.
                    context.safetyCopy = SafetyCopy(snapshotID: safety, node: safetyRoot?.node(named: record.name))
                }
                do {
                    progress?.update { $0.currentPath = "restoring \(record.name)" }
                    let source = try self.source(for: record)
                    let result = try await source.restore(node, record: record, to: destinations[record.name]!, context: context)
                    outcome.warnings += result.warnings
                    outcome.sources.append(result)
                } catch {
                    throw failure(error, outcome: outcome, source: record.name, destination: destinations[record.name])
                }
            }
            return outcome
        }
    }

    /// The error a failed restore step reports: what failed, what was already restored, and
    /// where the state before the attempt is.
    private func failure(_ error: any Error, outcome: RestoreOutcome, source: String, destination: RestoreDestination? = nil) -> BunkerError {
        let base = error as? BunkerError ?? BunkerError(.sourceIO, "\(error)")
        var message = "Restoring source \(source) failed: \(base.message)"
        switch destination {
        case .path?, .database?:
            if base.code == .invalidArgument {
                // Refused before anything was written (a non-empty --pgdata, say).
                message += " Nothing was restored; the live data of source \(source) was not touched."
            } else if case .path(let path)? = destination {
                message += " The live data of source \(source) was not touched; anything Bunker wrote to \(path) in this attempt is incomplete and must not be used."
            } else {
                message += " The live data of source \(source) was not touched."
            }
        default:
            message += " Source \(source) is as it was before the restore."
        }
        if !outcome.sources.isEmpty {
            message += " Already restored: \(outcome.sources.map(\.source).joined(separator: ", "))."
        }
        if let safety = outcome.safetySnapshotID {
            if outcome.sources.isEmpty, destination == nil || destination == .live {
                // In place, a source that fails is as it was, and none was restored before it.
                message += " Nothing was changed; the safety snapshot \(String(safety.prefix(8))) taken first holds the same state."
            } else {
                message += " The safety snapshot \(String(safety.prefix(8))) holds the state before the attempt: `bunker restore \(String(safety.prefix(8)))` puts it back."
            }
        }
        return BunkerError(base.code, message, cause: RestoreFailure(safetySnapshotID: outcome.safetySnapshotID, underlying: base.cause))
    }

    private func destinations(for selected: [SnapshotSource], target: RestoreTarget) throws -> [String: RestoreDestination] {
        var result: [String: RestoreDestination] = [:]
        func single(_ kind: SourceKind, _ option: String) throws -> SnapshotSource {
            guard selected.count == 1, selected[0].sourceKind == kind else {
                throw BunkerError(.invalidArgument, "\(option) restores one \(kind.rawValue) source: pick it with --source NAME (selected: \(selected.map(\.name).joined(separator: ", "))).")
            }
            return selected[0]
        }
        switch target {
        case .inPlace:
            for record in selected {
                guard isConfigured(record) else {
                    throw BunkerError(.invalidArgument, "Source \(record.name) is in the snapshot but not in the configuration, so Bunker does not know where its live data is; restore it with --target DIR.")
                }
                result[record.name] = .live
            }
        case .directory(let dir):
            let directory = Configuration.absolute(dir, relativeTo: nil)
            for record in selected {
                result[record.name] = try source(for: record).directoryDestination(in: directory, record: record)
            }
        case .sqliteFile(let path):
            result[try single(.sqlite, "--to").name] = .path(Configuration.absolute(path, relativeTo: nil))
        case .database(let name):
            let record = try single(.postgres, "--to-database")
            guard isConfigured(record) else {
                throw BunkerError(.invalidArgument, "Source \(record.name) is not configured, so Bunker does not know which server to connect to.")
            }
            result[record.name] = .database(name)
        case .sql(let path):
            result[try single(.postgres, "--sql").name] = .path(path == "-" ? "-" : Configuration.absolute(path, relativeTo: nil))
        case .pgdata(let path):
            let record = try single(.postgres, "--pgdata")
            guard record.isPhysicalBaseBackup else {
                throw BunkerError(.invalidArgument, "Source \(record.name) in this snapshot is a logical dump (pg_dump), not a physical base backup: restore it with --to-database or --sql, or give a snapshot of a source with method = \"physical\".")
            }
            result[record.name] = .path(Configuration.absolute(path, relativeTo: nil))
        }
        return result
    }

    /// Backs up the named sources as they are now, tagged `safety`; returns the snapshot id.
    private func safetyBackup(of names: [String], before id: ID, by actor: AuditActor) async throws -> String {
        var request = SourceBackupRequest(type: .full)
        request.sourceNames = names
        request.tags = ["safety"]
        request.description = "Pre-restore safety copy, taken before restoring snapshot \(id.short)"
        do {
            // The caller holds the repository's lock already; a shared lock may be held twice.
            let result = try await auditedBackup(request, by: actor, reason: "safety copy before restoring snapshot \(id.short)", progress: nil)
            return result.snapshotID.hex
        } catch let error as BunkerError {
            throw BunkerError(error.code, "The safety backup before the restore failed, so nothing was restored and the live data is unchanged: \(error.message)", cause: error.cause)
        }
    }
}

/// The cause of a failed restore's error: which safety snapshot holds the state before it.
struct RestoreFailure: Error, Sendable, CustomStringConvertible {
    var safetySnapshotID: String?
    var underlying: (any Error & Sendable)?
    var description: String { underlying.map { "\($0)" } ?? "restore failed" }
}

extension BunkerError {
    /// For a failed restore: the safety snapshot taken before it, if one was.
    public var safetySnapshotID: String? { (cause as? RestoreFailure)?.safetySnapshotID }
}

