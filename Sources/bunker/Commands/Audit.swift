import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit",
            abstract: "Read, export and check the tamper-evident audit trail.",
            discussion: """
                Every backup, restore, drill, export, verify and user change is recorded with its UTC time, actor, \
                target, outcome and reason. Rows are hash-chained, and the chain's head is signed into \
                audit-anchors.log in the data directory; `bunker audit verify` checks both.
                """,
            subcommands: [List.self, Verify.self, Export.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List audit rows, oldest first, a page at a time.")

            @OptionGroup var options: CatalogOptions

            @Option(help: ArgumentHelp("Only this action, or family of actions (user matches user.add, user.role, …).", valueName: "action"))
            var action: String?

            @Option(help: ArgumentHelp("Only rows of this actor.", valueName: "name"))
            var actor: String?

            @Option(help: ArgumentHelp("Only rows at or after this UTC time (2026-12-01 or 2026-12-01T08:00:00Z).", valueName: "time"))
            var since: String?

            @Option(help: ArgumentHelp("Only rows before this UTC time.", valueName: "time"))
            var until: String?

            @Option(help: ArgumentHelp("Start after this row (the next page's cursor).", valueName: "seq"))
            var after: Int64?

            @Option(help: ArgumentHelp("Rows per page.", valueName: "n"))
            var limit = 50

            func validate() throws {
                guard limit > 0 else { throw ValidationError("--limit must be at least 1.") }
                _ = try since.map(parseTime)
                _ = try until.map(parseTime)
            }

            func run() async throws {
                try await options.output.run {
                    var filter = AuditFilter()
                    filter.action = action
                    filter.actor = actor
                    filter.since = try since.map(parseTime)
                    filter.until = try until.map(parseTime)
                    filter.afterSeq = after
                    filter.limit = limit
                    let rows = try options.catalog().auditRecords(filter)
                    if options.output.json {
                        Output.printJSON(rows)
                        return
                    }
                    for row in rows {
                        var line = "\(row.seq)  \(row.timestamp)  \(row.actor)  \(row.action)  \(row.outcome.rawValue)"
                        if let target = row.target { line += "  \(target)" }
                        if let reason = row.reason { line += "  reason: \(reason)" }
                        if let start = row.operationSeq { line += "  (ends \(start))" }
                        print(line)
                    }
                    if rows.count == limit, let last = rows.last {
                        print("More rows: --after \(last.seq)")
                    }
                }
            }
        }

        struct Verify: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "verify",
                abstract: "Check the hash chain and the signed anchors; name the first altered, removed or inserted row.",
                discussion: "Exits 9 when the trail was tampered with.")

            @OptionGroup var options: CatalogOptions

            func run() async throws {
                try await options.output.run {
                    // Read-only: verifying must not change what it verifies (no key made, nothing closed).
                    let result = try options.catalog(readOnly: true).verifyAudit()
                    if options.output.json {
                        Output.printJSON(result)
                    } else if result.ok {
                        if !options.output.quiet {
                            let head = result.headSeq.map { "head row \($0), hash \(result.headHash!.prefix(16))…" } ?? "no rows yet"
                            print("Audit trail intact: \(result.rows) rows, \(head); \(result.anchors) signed anchors match.")
                        }
                    } else {
                        Output.error("Audit trail tampered with: \(result.problem ?? "")")
                    }
                    if !result.ok { throw ExitCode(9) }
                }
            }
        }

        struct Export: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "export", abstract: "Write the whole audit trail as JSON lines or CSV.")

            @OptionGroup var options: CatalogOptions

            @Option(help: ArgumentHelp("jsonl or csv.", valueName: "format"))
            var format: AuditExportFormat = .jsonl

            @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write to this file instead of standard output.", valueName: "file"))
            var output: String?

            func run() async throws {
                try await options.output.run {
                    let catalog = try options.catalog()
                    guard let output else {
                        try catalog.exportAudit(format: format) { FileHandle.standardOutput.write(Data($0.utf8)) }
                        return
                    }
                    let temp = output + ".partial"
                    guard FileManager.default.createFile(atPath: temp, contents: nil, attributes: [.posixPermissions: 0o600]),
                          let handle = FileHandle(forWritingAtPath: temp) else {
                        throw BunkerError(.invalidArgument, "Cannot create \(temp).")
                    }
                    do {
                        try catalog.exportAudit(format: format) { try handle.write(contentsOf: Data($0.utf8)) }
                        try handle.synchronize()
                        try handle.close()
                        guard rename(temp, output) == 0 else {
                            throw BunkerError(.sourceIO, "Cannot move the export to \(output): \(String(cString: strerror(errno))).")
                        }
                    } catch {
                        unlink(temp)
                        throw error
                    }
                }
            }
        }
    }
}

extension AuditExportFormat: ExpressibleByArgument {}

/// A UTC time from `2026-12-01` or RFC 3339 (`2026-12-01T08:00:00Z`).
func parseTime(_ text: String) throws -> Date {
    if let date = Timestamp.parse(text) { return date }
    let day = DateFormatter()
    day.locale = Locale(identifier: "en_US_POSIX")
    day.timeZone = TimeZone(identifier: "UTC")
    day.dateFormat = "yyyy-MM-dd"
    if let date = day.date(from: text) { return date }
    throw ValidationError("\(text) is not a time: write 2026-12-01 or 2026-12-01T08:00:00Z (UTC).")
}
