import BunkerCore
import BunkerService
import Foundation
import Hummingbird

/// `GET /stats` (the repository's statistics) and `GET /metrics` (Prometheus text format), for
/// every role.
struct StatsController {
    let deps: APIDependencies

    func register(on api: RouterGroup<BunkerRequestContext>) {
        let readers = deps.authorized(api, [.systemAdmin, .auditor, .viewer], action: "stats.read")
        readers.get("stats", use: stats)
        readers.get("metrics", use: metrics)
    }

    /// The primary repository's, or with `?repository=NAME` those of `[repositories.NAME]`.
    @Sendable func stats(_ request: Request, context: BunkerRequestContext) async throws -> RepositoryStats {
        let service = try deps.requireService()
        guard let name = request.uri.queryParameters.get("repository"), !name.isEmpty else { return try await service.stats() }
        guard service.configuration.repositories[name] != nil else {
            throw APIError(.notFound, code: "not_found", "No repository is named \(name) in the server's configuration.")
        }
        return try await service.stats(repository: name)
    }

    @Sendable func metrics(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let service = try deps.requireService()
        let stats = try await service.stats()
        let schedule = await service.makeScheduler().nextRuns().map { (job: $0.schedule.job.rawValue + ($0.schedule.backupType.map { ":" + $0.rawValue } ?? ""), cron: $0.schedule.cron.description, next: $0.at) }
        let text = PrometheusText.render(operations: try deps.catalog.operationMetrics(), repository: stats, schedule: schedule)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

extension RepositoryStats: ResponseEncodable {}

/// The metrics in Prometheus's text exposition format.
enum PrometheusText {
    /// The operations whose ended runs are counted, and their metric names.
    static let counted = [("backup", "bunker_backups_total"), ("restore", "bunker_restores_total"), ("verify", "bunker_verifies_total"), ("drill", "bunker_drills_total"), ("export", "bunker_exports_total")]

    static func render(operations: OperationMetrics, repository: RepositoryStats, schedule: [(job: String, cron: String, next: Date?)] = []) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
            let rendered = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
            out += "\(name)\(rendered) \(format(value))\n"
        }
        for (action, name) in counted {
            family(name, "counter", "Ended \(action) operations by outcome.")
            for outcome in ["success", "failure", "interrupted"] {
                let count = operations.counts.first { $0.action == action && $0.outcome == outcome }?.count ?? 0
                sample(name, [("outcome", outcome)], Double(count))
            }
        }
        family("bunker_last_backup_success_timestamp_seconds", "gauge", "Unix time of each source's newest successful backup.")
        for (source, date) in operations.lastBackupBySource.sorted(by: { $0.key < $1.key }) {
            sample("bunker_last_backup_success_timestamp_seconds", [("source", source)], date.timeIntervalSince1970.rounded())
        }
        family("bunker_operation_duration_seconds", "summary", "Time finished operations took, by kind.")
        for entry in operations.durations {
            sample("bunker_operation_duration_seconds_sum", [("kind", entry.kind)], entry.seconds)
            sample("bunker_operation_duration_seconds_count", [("kind", entry.kind)], Double(entry.count))
        }
        family("bunker_last_operation_duration_seconds", "gauge", "Time the newest finished operation of each kind took.")
        for entry in operations.durations {
            sample("bunker_last_operation_duration_seconds", [("kind", entry.kind)], entry.lastSeconds)
        }
        family("bunker_backup_bytes_added_total", "counter", "Bytes the recorded backups added to the repository's storage.")
        sample("bunker_backup_bytes_added_total", [], Double(operations.bytesAdded))
        family("bunker_repository_size_bytes", "gauge", "Bytes the repository occupies in storage.")
        sample("bunker_repository_size_bytes", [], Double(repository.storedBytes))
        family("bunker_repository_snapshots", "gauge", "Snapshots in the repository.")
        sample("bunker_repository_snapshots", [], Double(repository.snapshots))
        if let free = repository.freeBytes {
            family("bunker_repository_free_bytes", "gauge", "Free space on the repository's filesystem.")
            sample("bunker_repository_free_bytes", [], Double(free))
        }
        if let wal = repository.wal, !wal.isEmpty {
            family("bunker_wal_archive_lag_seconds", "gauge", "Seconds since the newest WAL file of each postgres source was archived.")
            for summary in wal {
                if let lag = summary.archiveLagSeconds { sample("bunker_wal_archive_lag_seconds", [("source", summary.source)], lag.rounded()) }
            }
            family("bunker_pitr_window_start_timestamp_seconds", "gauge", "Unix time of the earliest moment each postgres source can be restored to (the end of the oldest base backup with its WAL archived).")
            for summary in wal {
                if let start = summary.windowStart { sample("bunker_pitr_window_start_timestamp_seconds", [("source", summary.source)], start.timeIntervalSince1970.rounded()) }
            }
            family("bunker_pitr_window_end_timestamp_seconds", "gauge", "Unix time of the newest archived WAL of each postgres source: the latest moment it can be restored to.")
            for summary in wal {
                if let end = summary.windowEnd { sample("bunker_pitr_window_end_timestamp_seconds", [("source", summary.source)], end.timeIntervalSince1970.rounded()) }
            }
            family("bunker_wal_archive_gaps", "gauge", "Segments missing between the first and the last archived WAL segment of each source.")
            for summary in wal {
                sample("bunker_wal_archive_gaps", [("source", summary.source)], Double(summary.gaps.reduce(0) { $0 + $1.count }))
            }
        }
        if let last = operations.lastVerify {
            family("bunker_last_verify_success", "gauge", "1 if the newest verify found no damage, else 0.")
            sample("bunker_last_verify_success", [], last.passed ? 1 : 0)
            family("bunker_last_verify_timestamp_seconds", "gauge", "Unix time the newest verify ended.")
            sample("bunker_last_verify_timestamp_seconds", [], last.at.timeIntervalSince1970.rounded())
        }
        family("bunker_scheduler_next_run_timestamp_seconds", "gauge", "Unix time of each schedule's next run in bunker serve.")
        for entry in schedule {
            if let next = entry.next { sample("bunker_scheduler_next_run_timestamp_seconds", [("job", entry.job), ("cron", entry.cron)], next.timeIntervalSince1970.rounded()) }
        }
        return out
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
