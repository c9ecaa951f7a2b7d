import BunkerCore
import Foundation

/// A directory tree, backed up with its excludes and restored by swapping in a checked copy.
public struct FilesSource: Source {
    public let name: String
    public let path: String
    public let excludes: [String]
    public var kind: SourceKind { .files }
    public var origin: String { path }
    /// A restore in place replaces the tree (all but its excluded paths).
    public var replacedTree: String? { path }

    public init(name: String, path: String, excludes: [String] = []) {
        self.name = name
        self.path = (path as NSString).standardizingPath
        self.excludes = excludes
    }

    public func liveDataExists() async -> Bool {
        FileManager.default.fileExists(atPath: path)
    }

    public func prepareBackup(scratch: String) async throws -> PreparedBackup {
        var isDirectory: ObjCBool = false
        // Gone is a fault of the source (a volume not mounted, a folder moved), not of the request.
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw BunkerError(.sourceIO, "Source \(name): \(path) does not exist; mount the volume or put the folder back, or fix `path` in the configuration.")
        }
        guard isDirectory.boolValue else {
            throw BunkerError(.invalidArgument, "Source \(name): \(path) is not a directory. Fix `path` in the configuration.")
        }
        // A restore in place that a crash interrupted is finished or undone first, so that the
        // backup reads the tree whole.
        try await InPlaceRestore.recover(live: path, loader: nil)
        let record = SnapshotSource(name: name, kind: kind.rawValue, origin: path)
        return PreparedBackup(item: .path(path, name: name, excludes: excludes), record: { record }, cleanup: {})
    }

    public func restore(_ node: Node, record: SnapshotSource?, to destination: RestoreDestination, context: RestoreContext) async throws -> SourceRestoreResult {
        guard node.type == .directory, let subtree = node.subtree else {
            throw BunkerError(.corruptObject, "The snapshot's entry for source \(name) is not a directory.")
        }
        switch destination {
        case .database:
            throw BunkerError(.invalidArgument, "Source \(name) is a file tree; it cannot be restored into a database.")
        case .path(let target):
            var result = SourceRestoreResult(source: name, kind: kind, destination: target)
            let report = try await restoreChecked(subtree, to: target, context: context)
            result.files = report.filesRestored
            result.bytes = report.bytesRestored
            result.checks = ["SHA-256 of \(report.filesRestored) files"]
            return result
        case .live:
            var result = SourceRestoreResult(source: name, kind: kind, destination: path)
            let restore = try InPlaceRestore(source: name, live: path, excludes: excludes, context: context)
            let outcome = try await restore.run(node, subtree: subtree)
            result.files = outcome.report.filesRestored
            result.bytes = outcome.report.bytesRestored
            result.checks = ["SHA-256 of \(outcome.report.filesRestored) files"]
            if outcome.kept > 0 {
                result.checks.append("\(outcome.kept) live entries the safety snapshot does not hold were kept in place")
            }
            if let aside = outcome.setAside {
                result.warnings.append("Entries of \(path) that changed while the restore ran, and so are in no snapshot, were set aside in \(aside); move back what you need.")
            }
            return result
        }
    }

    public func drill(_ node: Node, record: SnapshotSource?, context: RestoreContext) async throws -> [DrillCheck] {
        guard let subtree = node.subtree else {
            return [DrillCheck(name: "tree", passed: false, detail: "The snapshot's entry for \(name) has no directory listing.")]
        }
        let scratch = context.scratch + "/drill-files-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let report = try await Restorer(loader: context.loader, progress: context.progress).restore(tree: subtree, to: scratch)
        if report.failures.isEmpty {
            return [DrillCheck(name: "sha256", passed: true, detail: "\(report.filesRestored) files (\(report.bytesRestored) bytes) restored, every SHA-256 matches.")]
        }
        let listed = report.failures.prefix(5).map { "\($0.path): \($0.message)" }.joined(separator: "; ")
        return [DrillCheck(name: "sha256", passed: false, detail: "\(report.failures.count) of \(report.filesRestored + report.failures.count) entries failed: \(listed)")]
    }

    /// `DIR/NAME`; the restore creates it.
    public func directoryDestination(in directory: String, record: SnapshotSource) throws -> RestoreDestination {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return .path(directory + "/" + name)
    }

    /// Restores a tree and fails (removing nothing it did not create) if any entry failed.
    private func restoreChecked(_ subtree: ID, to target: String, context: RestoreContext) async throws -> RestoreReport {
        let report = try await Restorer(loader: context.loader, progress: context.progress).restore(tree: subtree, to: target)
        guard report.failures.isEmpty else {
            let listed = report.failures.prefix(5).map { "\($0.path): \($0.message)" }.joined(separator: "; ")
            throw BunkerError(.integrity, "\(report.failures.count) entries of source \(name) could not be restored (\(listed)).")
        }
        return report
    }
}

extension SourceKind {
    /// A directory tree: ``FilesSource``.
    public static let files = SourceKind(rawValue: "files")
}

extension FilesSource: SourceKindDefinition {
    public static var kind: SourceKind { .files }
    public static var holdsDatabase: Bool { false }

    /// `path` (required) and `exclude`, a list of patterns checked here so that a bad one is an
    /// error when the configuration is read, not at the first backup.
    public static func makeSource(name: String, settings: inout some SourceSettingsReader) throws -> any Source {
        let path = try settings.required { try $0.path("path") }
        let excludes = try settings.strings("exclude") ?? []
        _ = try ExcludeRules(excludes)
        return FilesSource(name: name, path: path, excludes: excludes)
    }

    /// The tree where it was backed up from; a restore elsewhere needs nothing more.
    public static func makeSource(restoring record: SnapshotSource) throws -> any Source {
        FilesSource(name: record.name, path: record.origin)
    }
}
