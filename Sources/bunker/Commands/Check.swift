import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    /// The checks `bunker serve` runs every five minutes, once, for cron, systemd timers, a
    /// Kubernetes CronJob and monitoring systems (Nagios, Icinga, Zabbix, …), where no server runs.
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check backup health once and send the alerts it calls for; exit 0 OK, 1 warning, 2 critical.",
            discussion: """
                Runs the checks `bunker serve` runs every five minutes: the newest backup's age against \
                [notifications] backup_overdue_hours, free space against min_free_space_percent, the last \
                verify and drill, accounts locked, each postgres source's WAL archive (gaps, and lag against \
                wal_archive_lag_minutes), undelivered notifications. Each alert is sent once per episode, \
                sharing its state with `bunker serve` (alerts.json in the data directory), so both may run. \
                Prints one status line (Nagios plugin style) and the problems; exit status 0 OK, 1 WARNING, \
                2 CRITICAL (no backup for too long, a failed verify or drill, a gap in the WAL archive, or \
                the repository cannot be opened).
                """)

        @OptionGroup var repository: RepositoryOptions

        @Flag(help: "Report only; send no alert (and leave the alert state as it is).")
        var noNotify = false

        func run() async throws {
            let service: BunkerService
            do {
                service = try await repository.service(loadIndex: false)
            } catch let error as BunkerError {
                // The repository cannot be read: nothing says the backups are happening.
                let result = CheckResult(status: .critical, problems: [.init(severity: .critical, message: "cannot open the repository: \(error.message)")])
                print(result, json: repository.output.json)
                throw ExitCode(result.status.exitCode)
            }
            let alerts = noNotify ? [] : await service.checkAlerts()
            let health = await service.healthDetail()
            var result = CheckResult(status: .ok, problems: [], health: health)
            result.alertsSent = alerts.map { .init(kind: $0.kind.rawValue, severity: $0.kind.severity.rawValue, title: $0.title) }
            result.problems = health.problems.map { .init(severity: health.criticalProblems.contains($0) ? .critical : .warning, message: $0) }
            result.status = result.problems.contains { $0.severity == .critical } ? .critical : result.problems.isEmpty ? .ok : .warning
            print(result, json: repository.output.json)
            if result.status != .ok { throw ExitCode(result.status.exitCode) }
        }

        private func print(_ result: CheckResult, json: Bool) {
            if json {
                Output.printJSON(result)
                return
            }
            let label = result.status.rawValue.uppercased()
            var line = "BUNKER \(label) - "
            if result.problems.isEmpty {
                line += "backups are healthy"
                if let at = result.health?.lastBackupAt, let age = result.health?.lastBackupAgeHours {
                    line += String(format: "; last backup %@ (%.1f h ago)", at, age)
                }
            } else {
                line += result.problems.map(\.message).joined(separator: "; ")
            }
            if let age = result.health?.lastBackupAgeHours {
                // Performance data, for monitoring systems that graph it.
                line += String(format: " | last_backup_age_hours=%.1f", age)
                if let free = result.health?.space?.freePercent { line += String(format: " free_space_percent=%.1f", free) }
            }
            Swift.print(line)
            guard !repository.output.quiet else { return }
            for problem in result.problems { Swift.print("  \(problem.severity.rawValue): \(problem.message)") }
            for alert in result.alertsSent { Swift.print("  alert sent: \(alert.kind): \(alert.title)") }
        }
    }
}

/// What `bunker check --json` prints.
struct CheckResult: Encodable {
    enum Status: String, Encodable {
        case ok, warning, critical

        /// The Nagios plugin convention.
        var exitCode: Int32 {
            switch self {
            case .ok: 0
            case .warning: 1
            case .critical: 2
            }
        }
    }

    struct Problem: Encodable {
        var severity: Status
        var message: String
    }

    struct Alert: Encodable {
        var kind: String
        var severity: String
        var title: String
    }

    var status: Status
    var problems: [Problem]
    var alertsSent: [Alert] = []
    var health: HealthDetail?

    enum CodingKeys: String, CodingKey {
        case status, problems, health
        case alertsSent = "alerts_sent"
        case exitCode = "exit_code"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(status, forKey: .status)
        try c.encode(problems, forKey: .problems)
        try c.encode(alertsSent, forKey: .alertsSent)
        try c.encodeIfPresent(health, forKey: .health)
        try c.encode(status.exitCode, forKey: .exitCode)
    }
}
