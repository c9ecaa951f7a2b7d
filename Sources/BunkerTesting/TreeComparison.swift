import Foundation

/// Compares two trees entry by entry: kind, bytes, permission bits, mtimes (to the nanosecond)
/// and symlink targets. Returns the differences, empty when the trees are equal.
public func compareTrees(_ a: String, _ b: String, checkDirectoryTimes: Bool = true) -> [String] {
    var differences: [String] = []
    func entries(_ root: String) -> Set<String> {
        Set((FileManager.default.enumerator(atPath: root)?.allObjects as? [String]) ?? [])
    }
    let left = entries(a)
    let right = entries(b)
    for missing in left.subtracting(right).sorted() { differences.append("missing in restore: \(missing)") }
    for extra in right.subtracting(left).sorted() { differences.append("extra in restore: \(extra)") }
    for path in left.intersection(right).sorted() {
        var sa = stat()
        var sb = stat()
        lstat(a + "/" + path, &sa)
        lstat(b + "/" + path, &sb)
        if sa.st_mode != sb.st_mode {
            differences.append("\(path): mode \(String(sa.st_mode, radix: 8)) vs \(String(sb.st_mode, radix: 8))")
        }
        let kind = sa.st_mode & S_IFMT
        if kind != S_IFLNK && (kind != S_IFDIR || checkDirectoryTimes) {
            if sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec {
                differences.append("\(path): mtime \(sa.st_mtim.tv_sec).\(sa.st_mtim.tv_nsec) vs \(sb.st_mtim.tv_sec).\(sb.st_mtim.tv_nsec)")
            }
        }
        switch kind {
        case S_IFREG:
            if FileManager.default.contents(atPath: a + "/" + path) != FileManager.default.contents(atPath: b + "/" + path) {
                differences.append("\(path): content differs")
            }
        case S_IFLNK:
            let ta = try? FileManager.default.destinationOfSymbolicLink(atPath: a + "/" + path)
            let tb = try? FileManager.default.destinationOfSymbolicLink(atPath: b + "/" + path)
            if ta != tb { differences.append("\(path): link target \(ta ?? "-") vs \(tb ?? "-")") }
        default:
            break
        }
    }
    return differences
}
