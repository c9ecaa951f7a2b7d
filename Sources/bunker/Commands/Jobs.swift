import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Jobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "jobs",
            abstract: "List running and recent jobs (backups, restores, cleanups, verifies, drills), or cancel one.",
            discussion: """
                Jobs are read from the catalog, whichever process runs them (a CLI command, or bunker serve for the \
                API's and the schedules' jobs). GET /api/v1/jobs shows the live progress of the jobs a server runs.
                """,
            subcommands: [List.self, Cancel.self],
            defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List jobs, newest first.")

            @OptionGroup var options: CatalogOptions

            @Option(help: ArgumentHelp("At most this many jobs.", valueName: "n"))
            var limit = 20

            func validate() throws {
                guard limit > 0 else { throw ValidationError("--limit must be at least 1.") }
            }

            func run() async throws {
                try await options.output.run {
                    let jobs = try options.catalog().jobs(limit: limit)
                    if options.output.json {
                        Output.printJSON(jobs)
                        return
                    }
                    if jobs.isEmpty { print("No jobs yet.") }
                    for job in jobs {
                        var line = "\(job.id)  \(job.kind)  \(job.state.rawValue)  \(job.actor)  \(Output.localTime(job.startedAt))"
                        if let finished = job.finishedAt { line += " → \(Output.localTime(finished))" }
                        if let target = job.target { line += "  \(target)" }
                        if job.state == .running, let progress = job.progress { line += "  " + Self.describe(progress) }
                        if let by = job.cancelRequestedBy, job.state == .running { line += "  (cancel asked by \(by))" }
                        if let message = job.message { line += "  \(message)" }
                        print(line)
                    }
                }
            }

            /// A running job's counters: "12% (40 of 310 files, 1.2 GiB of 9.8 GiB)", or while the
            /// totals are still being counted, what is done so far.
            static func describe(_ progress: OperationProgress.Counters) -> String {
                let done = "\(progress.filesDone) files, \(Output.bytes(progress.bytesDone))"
                guard progress.totalsKnown, progress.bytesTotal > 0 else { return "(\(done) so far)" }
                let percent = min(100, Int(Double(progress.bytesDone) / Double(progress.bytesTotal) * 100))
                return "\(percent)% (\(progress.filesDone) of \(progress.filesTotal) files, \(Output.bytes(progress.bytesDone)) of \(Output.bytes(progress.bytesTotal)))"
            }
        }

        struct Cancel: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "cancel",
                abstract: "Cancel a running job.",
                discussion: """
                    The process that runs the job (bunker serve) stops it at its next safe point, within a second or two; \
                    the repository is left as after a kill: it verifies, and the next run completes. Audited as job.cancel.
                    """)

            @OptionGroup var options: CatalogOptions

            @Argument(help: ArgumentHelp("The job's id, as bunker jobs shows it.", valueName: "id"))
            var id: String

            func run() async throws {
                try await options.output.run {
                    do {
                        try BunkerService.cancelJob(id.lowercased(), in: options.catalog(), by: .localUser())
                    } catch let error as BunkerError where error.code == .objectNotFound {
                        // A wrong id is a usage error (64), not a damaged repository (7).
                        throw BunkerError(.invalidArgument, error.message)
                    }
                    if options.output.json {
                        Output.printJSON(["job_id": id.lowercased(), "status": "cancel_requested"])
                    } else {
                        print("Asked job \(id.lowercased()) to stop; `bunker jobs` shows when it has.")
                    }
                }
            }
        }
    }
}
