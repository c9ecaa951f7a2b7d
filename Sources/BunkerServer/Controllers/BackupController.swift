import BunkerCore
import BunkerService
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The Clinical Dashboard API's backup routes: create, list, show, download, verify and restore.
///
/// Only `SYSTEM_ADMIN` creates, downloads, verifies and restores; every role lists and reads
/// backups. Backups and restores run through the service's ``JobRunner``: one writer at a time.
struct BackupController {
    let deps: APIDependencies

    func register(on api: RouterGroup<BunkerRequestContext>) {
        let admin = deps.authorized(api, [.systemAdmin], action: "backup.write")
        admin.post("backup", use: create)
        admin.post("restore/:backup_id", use: restore)
        admin.get("backup/:backup_id/download", use: download)
        admin.post("backup/:backup_id/verify", use: verify)
        admin.post("backup/:backup_id/drill", use: drill)
        admin.post("backup/:backup_id/restore-files", use: restoreFiles)
        // File names and contents of a backup are the data itself: only an administrator sees them.
        let browse = deps.authorized(api, [.systemAdmin], action: "backup.browse")
        browse.get("backup/:backup_id/tree", use: tree)
        browse.get("backup/:backup_id/file", use: file)
        let readers = deps.authorized(api, [.systemAdmin, .auditor, .viewer], action: "backup.read")
        readers.get("backups", use: list)
        readers.get("backup/:backup_id", use: show)
    }

    // MARK: Create

    @Sendable func create(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let body = try await request.decode(as: BackupRequestBody.self, context: context)
        if let description = body.description, description.count > 1000 {
            throw APIError(.badRequest, code: "invalid_request", "description may have at most 1000 characters.")
        }
        let service = try deps.requireService()
        var backup = SourceBackupRequest(type: body.backupType ?? .full)
        backup.description = body.description
        let chosen = backup
        let actor = identity.actor(requestID: context.id)
        let options = JobOptions("a backup by \(identity.username)", access: .writes)

        guard body.async == true else {
            let result = try await service.jobs.run(options) {
                try await service.backup(chosen, by: actor, progress: options.progress)
            }
            return try created(result, checksum: service.archiveChecksum(ofSnapshot: result.snapshotID.hex)).response(from: request, context: context)
        }

        // The backup outlives this request: it runs in the job runner's task group, holding the
        // writer claim, and the answer is the job's id as soon as its start row is written.
        let startedJob = try await service.jobs.start(options) {
            _ = try await service.backup(chosen, by: actor, progress: options.progress)
        }
        var headers = HTTPFields()
        headers[.location] = "/api/v1/jobs/\(startedJob)"
        var response = try JobAccepted(jobID: startedJob).response(from: request, context: context)
        response.status = .accepted
        response.headers.append(contentsOf: headers)
        return response
    }

    private func created(_ result: BackupResult, checksum: String?) -> BackupCreated {
        let record = BackupRecord(id: result.snapshotID, snapshot: result.snapshot, createdBy: "", userID: nil)
        return BackupCreated(
            backupID: record.snapshotID, filename: WireTime.backupFilename(record.createdAt), sizeMB: WireTime.megabytes(record.sizeBytes),
            checksum: checksum, createdAt: WireTime.string(record.createdAt))
    }

    // MARK: Read

    @Sendable func list(_ request: Request, context: BunkerRequestContext) async throws -> [BackupItemDTO] {
        let limit = try Validate.listLimit(request, context: context)
        let held = await heldSnapshots()
        let until = await retentionDates()
        return try deps.catalog.backups(limit: limit).map { try item($0, held: held, until: until) }
    }

    @Sendable func show(_ request: Request, context: BunkerRequestContext) async throws -> BackupItemDTO {
        try item(try await record(Validate.backupID(context)), held: await heldSnapshots(), until: await retentionDates())
    }

    private func item(_ record: BackupRecord, held: Set<String>, until: [String: Date?]) throws -> BackupItemDTO {
        var item = BackupItemDTO(
            record, user: try record.createdByUserID.flatMap { try deps.catalog.user(id: $0) }, checksum: deps.service?.archiveChecksum(of: record))
        item.held = held.contains(record.snapshotID)
        item.retentionUntil = until[record.snapshotID] ?? nil
        return item
    }

    /// `retention_until` by snapshot id under the configured policy; empty (every date null) when
    /// there is no repository or its holds cannot be read, as for ``heldSnapshots()``.
    private func retentionDates() async -> [String: Date?] {
        guard let dates = try? await deps.service?.retentionUntil() else { return [:] }
        return Dictionary(uniqueKeysWithValues: dates.map { ($0.key.hex, $0.value) })
    }

    /// The ids of the snapshots under a hold; none when there is no repository, or its holds
    /// cannot be read (a damaged hold stops a forget, not a listing).
    private func heldSnapshots() async -> Set<String> {
        Set(((try? await deps.service?.holds()) ?? []).map(\.hold.snapshot.hex))
    }

    /// The catalog row of a backup id or prefix; 404 if there is none.
    private func record(_ id: String) async throws -> BackupRecord {
        var full = id
        if id.count < 64 {
            full = try await deps.requireService().repository.findSnapshot(id).id.hex
        }
        guard let record = try deps.catalog.backup(id: full) else {
            throw APIError(.notFound, code: "not_found", "No backup \(id) is in the catalog; `bunker catalog rebuild` adds the repository's snapshots to it.")
        }
        return record
    }

    // MARK: Browse

    /// `?path=` of a folder or a file in a backup: at most 4096 bytes ("" is the top).
    private func browsePath(_ request: Request) throws -> String {
        let path = request.uri.queryParameters.get("path") ?? ""
        guard path.utf8.count <= 4096 else {
            throw APIError(.badRequest, code: "invalid_request", "path may have at most 4096 bytes.")
        }
        return path
    }

    /// One folder of a backup (the snapshot browser), a page of `limit` entries (1 to 5000,
    /// default 1000) from `offset` on.
    @Sendable func tree(_ request: Request, context: BunkerRequestContext) async throws -> SnapshotFolder {
        struct PageQuery: Decodable {
            var offset: Int?
            var limit: Int?
        }
        let path = try browsePath(request)
        let page = try request.query(as: PageQuery.self, context: context)
        let offset = page.offset ?? 0, limit = page.limit ?? 1000
        guard offset >= 0, (1...5000).contains(limit) else {
            throw APIError(.badRequest, code: "invalid_request", "offset must be 0 or more and limit between 1 and 5000.")
        }
        let backup = try await record(Validate.backupID(context))
        return try await deps.requireService().listFolder(snapshot: backup.snapshotID, path: path, offset: offset, limit: limit)
    }

    /// One file of a backup, streamed (chunked) as it is read from the repository. What can fail
    /// before the first byte (no such backup or file, a folder) is an error answer; a failure later
    /// (a damaged pack, a content whose SHA-256 differs from the recorded one) ends the connection
    /// without the chunked body's end, so no client takes the file for whole.
    @Sendable func file(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let path = try browsePath(request)
        let service = try deps.requireService()
        let backup = try await record(Validate.backupID(context))
        let entry = try await service.fileEntry(snapshot: backup.snapshotID, path: path)
        let actor = identity.actor(requestID: context.id)
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.contentDisposition] = Self.attachment(entry.name)
        headers[.xContentTypeOptions] = "nosniff"
        return streamed(headers: headers, what: "download of \(path) from \(backup.snapshotID)", context: context) { send in
            try await service.readFile(snapshot: backup.snapshotID, path: path, by: actor, output: send)
        }
    }

    /// `attachment` with the name: an ASCII fallback (other bytes, quotes and backslashes as `_`)
    /// and the exact name in RFC 5987's `filename*`.
    static func attachment(_ name: String) -> String {
        let ascii = String(name.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" && $0 != "\\" && $0.value != 0x7F ? Character($0) : "_" })
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "!#$&+-.^_`|~")
        let encoded = name.addingPercentEncoding(withAllowedCharacters: allowed) ?? ascii
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }

    // MARK: Restore

    @Sendable func restore(_ request: Request, context: BunkerRequestContext) async throws -> RestoreDone {
        let identity = try context.requireIdentity()
        let id = try Validate.backupID(context)
        let body = try await request.decode(as: RestoreRequestBody.self, context: context)
        let service = try deps.requireService()
        // Unsigned only where the configuration allows it and no password is given: a given
        // password is a signature attempt, checked (and audited when wrong) as always.
        let unsigned = service.configuration.server.restoreSignature == .optional && (body.password ?? "").isEmpty
        let backup = try await record(id)
        if !unsigned, (body.password ?? "").isEmpty || identity.serviceToken != nil {
            // A signature that cannot be made (no password, a service token) is refused before
            // anything else is asked for: a client written against the Clinical Dashboard backup
            // guide, whose body is {"create_safety_backup": true}, gets the 403 and the denied
            // esign row it is documented to get, not "a restore needs a reason".
            _ = try sign(backup, password: body.password, identity: identity, context: context)
        }
        let reason = unsigned ? try body.reason.map(Validate.restoreReason) : try Validate.restoreReason(body.reason)
        var restore = SourceRestoreRequest(snapshot: backup.snapshotID)
        restore.safetyBackup = body.createSafetyBackup ?? true
        restore.reason = reason
        if unsigned {
            restore.signatureWaived = true
        } else {
            restore.signature = try sign(backup, password: body.password, identity: identity, context: context)
        }
        var access = JobAccess.writes
        let pointInTime = body.targetTime != nil || body.pgdata != nil
        if pointInTime {
            // Point-in-time recovery: a new data directory, never the live cluster's.
            guard let pgdata = body.pgdata, pgdata.hasPrefix("/") else {
                throw APIError(.badRequest, code: "invalid_request", "\"target_time\" restores a physical PostgreSQL base backup into a new data directory: give its absolute path on the server in \"pgdata\" (empty or absent).")
            }
            let physical = try await service.physicalSources(inSnapshot: backup.snapshotID)
            guard let source = body.source ?? (physical.count == 1 ? physical[0] : nil), physical.contains(source) else {
                throw APIError(.badRequest, code: "invalid_request", physical.isEmpty
                    ? "Backup \(id) holds no physical PostgreSQL base backup (a source with method = \"physical\"), so it cannot be restored to a moment."
                    : "Name the source to restore in \"source\": one of \(physical.joined(separator: ", ")).")
            }
            do {
                try restore.restorePhysical(source: source, into: pgdata, targetTime: body.targetTime)
            } catch let error as BunkerError {
                throw APIError(.badRequest, code: "invalid_request", error.message)
            }
            access = .reads
        }
        let chosen = restore
        let actor = identity.actor(requestID: context.id)
        let options = JobOptions("a restore by \(identity.username)", access: access)
        let outcome = try await service.jobs.run(options) {
            try await service.restore(chosen, by: actor, progress: options.progress)
        }
        var done = RestoreDone(
            backupID: outcome.snapshotID, backupFilename: WireTime.backupFilename(backup.createdAt),
            safetyBackupID: outcome.safetySnapshotID, restoredAt: WireTime.string(deps.catalog.options.now()))
        if pointInTime, let restored = outcome.sources.first {
            done.pgdata = restored.destination
            done.startCommand = restored.details["start_command"]
        }
        return done
    }

    /// The electronic signature "approved restore" of `backup` with the re-entered `password`;
    /// a missing or wrong password is a 403, recorded as a denied `esign` row (wrong ones count
    /// towards the lockout). A service token is no person and has no password: it never signs
    /// (a 403, recorded the same way).
    private func sign(_ backup: BackupRecord, password: String?, identity: Identity, context: BunkerRequestContext) throws -> ElectronicSignature {
        let meaning = "approved restore"
        guard let userID = identity.userID, identity.serviceToken == nil else {
            try deps.catalog.recordDenied("esign", target: backup.snapshotID, reason: "a service token cannot sign \"\(meaning)\"", by: identity.actor(requestID: context.id))
            throw APIError(.forbidden, code: "signature_required", "A restore is an electronic signature by a person: log in as a SYSTEM_ADMIN user and re-enter your password. A service token cannot sign (it may restore unsigned only where [server] restore_signature = \"optional\").")
        }
        guard let password, !password.isEmpty else {
            try deps.catalog.recordDenied("esign", target: backup.snapshotID, reason: "no password re-entered for the signature \"\(meaning)\"", by: identity.actor(requestID: context.id))
            throw APIError(.forbidden, code: "signature_required", "A restore is an electronic signature: re-enter your password in \"password\", with a \"reason\".")
        }
        do {
            return try deps.catalog.confirmSignature(userID: userID, password: password, meaning: meaning, target: backup.snapshotID, requestID: context.id)
        } catch let error as BunkerError where error.code == .authenticationFailed || error.code == .accountLocked {
            throw APIError(.forbidden, code: error.code == .accountLocked ? "account_locked" : "signature_invalid", error.message)
        }
    }

    /// Files and folders of a backup restored into a new or empty directory on the server (the
    /// snapshot browser's "Restore selected…"), signed like every restore.
    @Sendable func restoreFiles(_ request: Request, context: BunkerRequestContext) async throws -> FilesRestored {
        let identity = try context.requireIdentity()
        let id = try Validate.backupID(context)
        let body = try await request.decode(as: RestoreFilesBody.self, context: context)
        let reason = try Validate.restoreReason(body.reason)
        guard (1...1000).contains(body.paths.count), body.target.utf8.count <= 4096 else {
            throw APIError(.badRequest, code: "invalid_request", "Name 1 to 1000 paths of the backup in \"paths\", and a target of at most 4096 bytes.")
        }
        let service = try deps.requireService()
        let backup = try await record(id)
        let signature = try sign(backup, password: body.password, identity: identity, context: context)
        let actor = identity.actor(requestID: context.id)
        let options = JobOptions("a restore of files by \(identity.username)", access: .reads)
        let report: RestoreReport
        do {
            report = try await service.jobs.run(options) {
                try await service.restoreFiles(
                    snapshot: backup.snapshotID, paths: body.paths, into: body.target, by: actor, reason: reason, signature: signature, progress: options.progress)
            }
        } catch let error as BunkerError where error.code == .objectExists {
            throw APIError(.conflict, code: "target_not_empty", APIError.withoutPaths(error.message))
        }
        return FilesRestored(
            backupID: backup.snapshotID, target: body.target, files: report.filesRestored, directories: report.directoriesRestored,
            bytes: report.bytesRestored, failures: report.failures.count)
    }

    // MARK: Download and verify

    /// The export ZIP, streamed as it is made (chunked): no copy of it is written to the server's
    /// disk, and no more than four pieces of it (each at most a repository chunk, 2 MiB by
    /// default) wait in memory for the client, however slowly it reads. What can fail before the first byte (no such backup, no repository) is an error
    /// answer; a failure later (a damaged pack, the repository locked by a prune) ends the
    /// connection without the chunked body's end, so no client takes the archive for whole, and
    /// is audited as the export's failure. So does a client that takes no piece for the idle
    /// timeout: the export holds a shared lock of the repository, which a client that stops
    /// reading must not keep from a prune for ever.
    @Sendable func download(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let service = try deps.requireService()
        let backup = try await record(Validate.backupID(context))
        let actor = identity.actor(requestID: context.id)
        var headers = HTTPFields()
        headers[.contentType] = "application/zip"
        headers[.contentDisposition] = "attachment; filename=\"\(WireTime.backupFilename(backup.createdAt))\""
        // Known only once an export in the current format recorded it; then the export must
        // give these bytes again, and a body that does not is cut short (below).
        let promised = service.archiveChecksum(of: backup)
        if let promised, let digest = Self.reprDigest(hex: promised) {
            headers[Self.checksumHeader] = promised
            headers[Self.reprDigestHeader] = digest
        }
        return streamed(headers: headers, what: "download of \(backup.snapshotID)", context: context) { send in
            // A job like any other: `GET /jobs` lists it, `DELETE /jobs/{id}` stops it.
            let options = JobOptions("an export by \(actor.name)", access: .reads)
            let summary = try await service.jobs.run(options) {
                try await service.export(snapshot: backup.snapshotID, by: actor, progress: options.progress, streamingTo: send)
            }
            if let promised, summary.sha256 != promised {
                // The export recorded the new digest; the next download promises it.
                throw BunkerError(
                    .integrity,
                    "The export of \(backup.snapshotID.prefix(8)) came out as SHA-256 \(summary.sha256), not the \(promised) sent in its header; download it again.")
            }
        }
    }

    /// The ZIP's SHA-256 in hex, as `sha256sum` prints it.
    static let checksumHeader = HTTPField.Name("X-Checksum-SHA256")!
    /// RFC 9530's header: `sha-256=:<base64>:`.
    static let reprDigestHeader = HTTPField.Name("Repr-Digest")!

    static func reprDigest(hex: String) -> String? {
        guard let id = ID(hex: hex) else { return nil }
        return "sha-256=:\(Data(id.bytes).base64EncodedString()):"
    }

    /// A 200 whose body `produce` writes through its `send`, streamed (chunked) as it is made:
    /// no more than four pieces wait in memory for the client. A failure of `produce` after the
    /// first byte ends the connection without the chunked body's end, so no client takes the
    /// body for whole. So does a client that takes no piece for the idle timeout: what `produce`
    /// reads holds a shared lock of the repository, which a client that stops reading must not
    /// keep from a prune for ever.
    private func streamed(
        headers: HTTPFields, what: String, context: BunkerRequestContext,
        produce: @escaping @Sendable (_ send: @escaping @Sendable (Data) async throws -> Void) async throws -> Void
    ) -> Response {
        let logger = context.logger
        let channel = context.channel
        let sendTimeout = Duration.nanoseconds(deps.limits.idleTimeout.nanoseconds)
        let body = ResponseBody { writer in
            let pipe = ChunkPipe<ByteBuffer>(capacity: 4)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await produce { data in try await pipe.send(ByteBuffer(data: data)) }
                        pipe.finish()
                    } catch {
                        pipe.finish(throwing: error)
                        throw error
                    }
                }
                // Odd while a piece is being written: a watchdog that sees the same odd count
                // twice, a send timeout apart, cuts the connection, and the write fails.
                let writes = Atomic(0)
                group.addTask {
                    var seen = -1
                    while (try? await Task.sleep(for: sendTimeout)) != nil {
                        let now = writes.load(ordering: .acquiring)
                        if now == seen, now % 2 == 1 {
                            logger.warning("\(what): the client took nothing for \(sendTimeout); closing the connection")
                            channel.close(promise: nil)
                            return
                        }
                        seen = now
                    }
                }
                do {
                    while let chunk = try await pipe.next() {
                        writes.add(1, ordering: .releasing)
                        try await writer.write(chunk)
                        writes.add(1, ordering: .releasing)
                    }
                    try await writer.finish(nil)
                } catch {
                    pipe.close()
                    group.cancelAll()
                    logger.error("\(what) stopped: \(error)")
                    throw error
                }
                group.cancelAll()
                try await group.waitForAll()
            }
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    @Sendable func verify(_ request: Request, context: BunkerRequestContext) async throws -> VerifyResult {
        let identity = try context.requireIdentity()
        let service = try deps.requireService()
        let backup = try await record(Validate.backupID(context))
        let options = JobOptions("a verify by \(identity.username)", access: .reads)
        let actor = identity.actor(requestID: context.id)
        let report = try await service.jobs.run(options) {
            try await service.verify(snapshot: backup.snapshotID, by: actor, progress: options.progress)
        }
        let message = report.ok
            ? "Every pack backup \(backup.snapshotID.prefix(8)) needs was read, hashed and authenticated (\(report.packsRead) packs)."
            : "Backup \(backup.snapshotID.prefix(8)) is damaged: " + report.errors.prefix(5).map(\.message).joined(separator: " ")
        return VerifyResult(backupID: backup.snapshotID, valid: report.ok, message: message)
    }

    /// A restore drill of the backup: restored into a scratch place (never over live data),
    /// checked, and timed; the answer is the report without the server's paths.
    @Sendable func drill(_ request: Request, context: BunkerRequestContext) async throws -> DrillResult {
        let identity = try context.requireIdentity()
        let service = try deps.requireService()
        let backup = try await record(Validate.backupID(context))
        let options = JobOptions("a drill by \(identity.username)", access: .reads)
        let actor = identity.actor(requestID: context.id)
        let report = try await service.jobs.run(options) {
            try await service.drill(snapshot: backup.snapshotID, by: actor, progress: options.progress)
        }
        return DrillResult(report)
    }
}

extension SnapshotFolder: ResponseEncodable {}
