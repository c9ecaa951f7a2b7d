import ArgumentParser
import BunkerCore
import Foundation

extension BunkerCommand {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a snapshot's details and the entries it holds.")

        @OptionGroup var repository: RepositoryOptions

        @Argument(help: ArgumentHelp("Snapshot id (or a unique prefix, or latest).", valueName: "id"))
        var snapshot: String

        @Flag(help: "Only the snapshot's details, not its entries.")
        var summaryOnly = false

        func run() async throws {
            try await repository.output.run {
                let repo = try await repository.open()
                let (id, s) = try await repo.findSnapshot(snapshot)
                var entries: [EntryOutput] = []
                if !summaryOnly {
                    var stack: [(ID, String)] = [(s.tree, "")]
                    while let (treeID, prefix) = stack.popLast() {
                        let tree = try await repo.loadTree(treeID)
                        for node in tree.nodes.reversed() {
                            let path = prefix + "/" + node.name
                            entries.append(EntryOutput(path: path, node: node))
                            if let sub = node.subtree { stack.append((sub, path)) }
                        }
                    }
                    entries.sort { $0.path < $1.path }
                }
                if repository.output.json {
                    Output.printJSON(ShowOutput(snapshot: SnapshotOutput(id: id, snapshot: s), entries: summaryOnly ? nil : entries))
                    return
                }
                print("Snapshot \(id.hex)")
                print("  time:        \(Timestamp.format(s.time))")
                print("  host, user:  \(s.hostname), \(s.username)")
                print("  paths:       \(s.paths.joined(separator: ", "))")
                if !s.tags.isEmpty { print("  tags:        \(s.tags.joined(separator: ", "))") }
                if let d = s.description { print("  description: \(d)") }
                if let p = s.parent { print("  parent:      \(p.short)") }
                if let sum = s.summary {
                    print("  content:     \(sum.totalFiles) files, \(sum.directories) directories, \(Output.bytes(sum.totalBytes))")
                    print("  added:       \(Output.bytes(sum.dataAdded)) (\(Output.bytes(sum.dataAddedStored)) stored) in \(Output.duration(sum.durationSeconds))")
                }
                print("  program:     \(s.programVersion)")
                for e in entries {
                    let size = e.size.map { Output.bytes($0) } ?? ""
                    let mode = String(e.mode, radix: 8)
                    let suffix = e.linkTarget.map { " -> \($0)" } ?? (e.type == "dir" ? "/" : "")
                    print("\(e.type.padding(toLength: 7, withPad: " ", startingAt: 0)) \(mode.padding(toLength: 5, withPad: " ", startingAt: 0)) \(size.padding(toLength: 10, withPad: " ", startingAt: 0)) \(e.path)\(suffix)")
                }
            }
        }
    }
}

struct EntryOutput: Encodable {
    var path: String
    var type: String
    var mode: UInt32
    var size: UInt64?
    var mtime: String
    var sha256: String?
    var linkTarget: String?

    init(path: String, node: Node) {
        self.path = path
        type = node.type.rawValue
        mode = node.mode
        size = node.size
        mtime = Timestamp.format(Date(timeIntervalSince1970: Double(node.mtimeNanoseconds) / 1e9))
        sha256 = node.sha256
        linkTarget = node.linkTarget
    }

    enum CodingKeys: String, CodingKey {
        case path, type, mode, size, mtime, sha256
        case linkTarget = "link_target"
    }
}

struct ShowOutput: Encodable {
    var snapshot: SnapshotOutput
    var entries: [EntryOutput]?
}
