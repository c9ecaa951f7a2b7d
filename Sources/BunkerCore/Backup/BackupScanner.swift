import Foundation

/// Counts the files and bytes a backup will read, so that its progress can show a percentage and
/// an ETA. Only a backup without a parent snapshot counts: one with a parent takes the parent's
/// totals as an estimate instead (``Archiver``).
///
/// The count walks the same roots with the same exclude rules as the backup, with `lstat` only,
/// on a thread of its own: it blocks on the file system and must not hold one of the cooperative
/// pool's threads that the backup's tasks need. Nothing waits for it and it changes nothing but
/// the progress totals, so a backup that ends first is not held back; streams have no size to
/// count, and a tree that changes meanwhile only makes the estimate wrong.
struct BackupScanner {
    private let roots: [(path: String, excludes: ExcludeRules)]

    /// The roots of `items`, each with the request's `excludes` and its own.
    init(items: [BackupItem], excludes: [String]) throws {
        var roots: [(path: String, excludes: ExcludeRules)] = []
        func collect(_ items: [BackupItem]) throws {
            for item in items {
                switch item {
                case .path(let path, _, let own): roots.append((path, try ExcludeRules(excludes + own)))
                case .file(let path, _): roots.append((path, try ExcludeRules([])))
                case .directory(_, let children): try collect(children)
                case .stream, .entries: break
                }
            }
        }
        try collect(items)
        self.roots = roots
    }

    /// Starts the count; `progress` gets the totals when it is done.
    func start(reporting progress: OperationProgress) {
        let roots = self.roots
        Thread.detachNewThread {
            var files = 0
            var bytes: UInt64 = 0
            func walk(_ path: String, relative: String, name: String, excludes: ExcludeRules) {
                guard let status = try? FileStatus(path: path) else { return }
                let kind = status.kind
                if !relative.isEmpty, excludes.excludes(name: name, absolute: path, relative: relative, isDirectory: kind == .directory) { return }
                switch kind {
                case .file:
                    files += 1
                    bytes += status.size
                case .directory:
                    for child in (try? FileSystem.entries(of: path)) ?? [] {
                        walk(path + "/" + child, relative: relative.isEmpty ? child : relative + "/" + child, name: child, excludes: excludes)
                    }
                case .symlink, .fifo, .socket, .characterDevice, .blockDevice:
                    break
                }
            }
            for (path, excludes) in roots { walk(path, relative: "", name: (path as NSString).lastPathComponent, excludes: excludes) }
            progress.update {
                $0.filesTotal = files
                $0.bytesTotal = bytes
                $0.totalsKnown = true
            }
        }
    }
}
