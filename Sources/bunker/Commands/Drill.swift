import ArgumentParser
import BunkerCore
import BunkerService
import BunkerSources
import Foundation

extension BunkerCommand {
    struct Drill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "drill",
            abstract: "Restore a snapshot into scratch places and prove it is whole.",
            discussion: """
                Checks the snapshot's stored data, restores every source into a scratch place (a temporary directory, \
                a scratch SQLite file, a scratch PostgreSQL database that is dropped afterwards), runs the integrity \
                checks (SHA-256 of every file, PRAGMA integrity_check, the load's exit status, row counts against those \
                recorded at backup time) and measures the time it took. The report (JSON and text) is kept under the \
                data directory's drills/. Exits 7 when the drill fails. Live data is never touched.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Snapshot id (default: the newest that is not a safety copy).", valueName: "id"))
        var snapshot: String?

        @Option(name: .customLong("source"), help: ArgumentHelp("Drill only this source (repeatable).", valueName: "name"))
        var sources: [String] = []

        @Option(help: ArgumentHelp("For a physical PostgreSQL base backup: recover the scratch server up to this moment (the newest base backup that ended before it is drilled).", valueName: "time"))
        var toTime: String?

        func validate() throws {
            if let toTime, RecoveryTarget.parseTime(toTime) == nil {
                throw ValidationError("--to-time \(toTime) is not a moment Bunker can read: write it as \"2026-12-03 14:00:00+00\" or 2026-12-03T14:00:00Z.")
            }
        }

        func run() async throws {
            try await repository.output.run {
                let service = try await repository.service()
                let recovery = toTime.flatMap(RecoveryTarget.parseTime).map { RecoveryOptions(target: .time($0)) }
                let report = try await repository.job(service, "drill", access: .reads) {
                    try await service.drill(snapshot: snapshot, sourceNames: sources, recovery: recovery, progress: $0)
                }
                if repository.output.json {
                    Output.printJSON(report)
                } else if !repository.output.quiet || !report.passed {
                    print(report.text, terminator: "")
                    if let path = report.reportPath { print("Report: \(path)") }
                }
                if !report.passed { throw ExitCode(7) }
            }
        }
    }
}
