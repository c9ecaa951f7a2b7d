import ArgumentParser
import BunkerCore
import Foundation

extension BunkerCommand {
    struct Snapshots: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "snapshots",
            abstract: "List snapshots, oldest first.",
            discussion: """
                "Retention until" is the earliest time the retention policy ([retention], or \
                [repositories.NAME.retention] with --repository) could remove the snapshot, if backups go on at \
                the policy's cadence; "held" while a hold keeps it, "-" when the policy keeps it for good. \
                `bunker forget --dry-run` says which rules keep each snapshot.
                """)

        @OptionGroup var repository: RepositoryOptions

        @Option(name: .customLong("tag"), help: "Only snapshots with this tag (repeatable).")
        var tags: [String] = []

        func run() async throws {
            try await repository.output.run {
                let policy = try repository.configuration().retention
                let repo = try await repository.open(loadIndex: false)
                let all = try await repo.snapshots()
                // A hold that cannot be read stops a forget, not a listing: the dates are then unknown ("?", null).
                let until = (try? await repo.retentionUntil(policy: policy, snapshots: all)) ?? [:]
                let held = Set(((try? await repo.holds()) ?? []).map(\.hold.snapshot))
                let list = all.filter { entry in tags.allSatisfy(entry.snapshot.tags.contains) }
                if repository.output.json {
                    Output.printJSON(list.map { SnapshotOutput(id: $0.id, snapshot: $0.snapshot, retentionUntil: until[$0.id] ?? nil) })
                    return
                }
                print("ID        Time                 Host             Tags         Size        Retention until      Paths")
                for (id, s) in list {
                    let host = s.hostname.padding(toLength: 16, withPad: " ", startingAt: 0)
                    let tags = s.tags.joined(separator: ",").padding(toLength: 12, withPad: " ", startingAt: 0)
                    let size = Output.bytes(s.summary?.totalBytes ?? 0).padding(toLength: 11, withPad: " ", startingAt: 0)
                    let date = until[id].map { $0.map(Output.localTime) ?? (held.contains(id) ? "held" : "-") } ?? "?"
                    let retention = date.padding(toLength: 19, withPad: " ", startingAt: 0)
                    print("\(id.short)  \(Output.localTime(s.time))  \(host) \(tags) \(size) \(retention)  \(s.paths.joined(separator: ", "))")
                }
                print("\(list.count) snapshot\(list.count == 1 ? "" : "s")")
            }
        }
    }
}

struct SnapshotOutput: Encodable {
    var id: String
    var shortID: String
    var time: Date
    var hostname: String
    var username: String
    var paths: [String]
    var tags: [String]
    var description: String?
    var parent: String?
    var tree: String
    var programVersion: String
    var summary: BackupSummary?
    /// When the retention policy could remove it (null while held or kept for good); absent
    /// where it was not worked out (`bunker show`).
    var retentionUntil: Date??

    init(id: ID, snapshot s: Snapshot, retentionUntil: Date?? = nil) {
        self.retentionUntil = retentionUntil
        self.id = id.hex
        shortID = id.short
        time = s.time
        hostname = s.hostname
        username = s.username
        paths = s.paths
        tags = s.tags
        description = s.description
        parent = s.parent?.hex
        tree = s.tree.hex
        programVersion = s.programVersion
        summary = s.summary
    }

    enum CodingKeys: String, CodingKey {
        case id, time, hostname, username, paths, tags, description, parent, tree, summary
        case shortID = "short_id"
        case programVersion = "program_version"
        case retentionUntil = "retention_until"
    }
}
