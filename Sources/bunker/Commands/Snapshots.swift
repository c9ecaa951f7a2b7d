import ArgumentParser
import BunkerCore
import Foundation

extension BunkerCommand {
    struct Snapshots: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List snapshots, oldest first.")

        @OptionGroup var repository: RepositoryOptions

        @Option(name: .customLong("tag"), help: "Only snapshots with this tag (repeatable).")
        var tags: [String] = []

        func run() async throws {
            try await repository.output.run {
                let repo = try await repository.open(loadIndex: false)
                let list = try await repo.snapshots().filter { entry in tags.allSatisfy(entry.snapshot.tags.contains) }
                if repository.output.json {
                    Output.printJSON(list.map { SnapshotOutput(id: $0.id, snapshot: $0.snapshot) })
                    return
                }
                print("ID        Time                 Host             Tags         Size        Paths")
                for (id, s) in list {
                    let host = s.hostname.padding(toLength: 16, withPad: " ", startingAt: 0)
                    let tags = s.tags.joined(separator: ",").padding(toLength: 12, withPad: " ", startingAt: 0)
                    let size = Output.bytes(s.summary?.totalBytes ?? 0).padding(toLength: 11, withPad: " ", startingAt: 0)
                    print("\(id.short)  \(Output.localTime(s.time))  \(host) \(tags) \(size) \(s.paths.joined(separator: ", "))")
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

    init(id: ID, snapshot s: Snapshot) {
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
    }
}
