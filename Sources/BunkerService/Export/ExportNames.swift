import BunkerCore
import Foundation

/// The entry names of an export archive: each one different from every other, also ignoring case
/// (an archive is unpacked on case-insensitive file systems too, where `Docs` would be written
/// through a symbolic link named `docs`), none of them one of Bunker's own top-level files, and
/// none with a backslash (which Windows tools read as a separator, so `..\..\x` would climb out
/// of the folder the archive is unpacked into).
///
/// A name that cannot be kept is written changed (a backslash as `_`, a taken name with `~N`
/// appended), and the change is listed in `metadata.json` under `renamed`.
struct ExportNames {
    /// The files Bunker writes at the top of every archive.
    static let bunkerFiles = ["metadata.json", "SHA256SUMS"]

    private var taken: Set<String> = []
    /// Entries whose names had to change: archive path and snapshot path.
    private(set) var renamed: [ExportSummary.Renamed] = []

    init() {
        for name in Self.bunkerFiles { taken.insert(Self.key(name)) }
    }

    /// The name a snapshot entry is shown and matched by (its name as stored in the tree).
    /// The one place the export reads a node's name, so that byte names need one change here.
    static func name(of node: Node) -> String {
        node.name
    }

    /// Claims the archive path for an entry named `component` inside the directory whose
    /// archive path is `parent` (nil: the top); `original` is the entry's path in the snapshot.
    mutating func claim(_ component: String, under parent: String?, original: String) -> String {
        let prefix = parent.map { $0 + "/" } ?? ""
        let safe = component.replacingOccurrences(of: "\\", with: "_")
        var path = prefix + safe
        var suffix = 1
        while taken.contains(Self.key(path)) {
            path = prefix + safe + "~\(suffix)"
            suffix += 1
        }
        taken.insert(Self.key(path))
        if path != original { renamed.append(ExportSummary.Renamed(path: path, original: original)) }
        return path
    }

    /// Bunker's own top-level file `name` (one of ``bunkerFiles``), taken from the start.
    func bunkerFile(_ name: String) -> String {
        precondition(Self.bunkerFiles.contains(name))
        return name
    }

    private static func key(_ path: String) -> String {
        path.lowercased()
    }
}
