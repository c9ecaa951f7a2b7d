import Foundation

/// Deterministic pseudo-random bytes (xorshift), so that generated trees are the same every run.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
    }

    public mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> Data {
        var data = Data(count: count)
        data.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            var i = 0
            while i < count {
                var word = next()
                let n = min(8, count - i)
                withUnsafeBytes(of: &word) { w in
                    for j in 0..<n { raw[i + j] = w[j] }
                }
                i += n
            }
        }
        return data
    }

    /// Compressible text: words from a small vocabulary.
    public mutating func text(_ count: Int) -> Data {
        let words = ["patient", "study", "image", "dermatology", "lesion", "follow-up", "biopsy", "normal",
                     "consult", "report", "the", "and", "of", "with", "left", "right", "arm", "scan"]
        var out = Data()
        out.reserveCapacity(count + 16)
        while out.count < count {
            out.append(contentsOf: words[Int(next() % UInt64(words.count))].utf8)
            out.append(next() % 12 == 0 ? 10 : 32)
        }
        return out.prefix(count)
    }
}

/// Builds a source tree with the shapes that break backup tools.
public enum TreeGenerator {
    /// `groups` folders of `folders` folders of `files` small text files each, under `root`:
    /// many small listings on three levels.
    public static func makeFolderTree(at root: String, groups: Int, folders: Int, files: Int) throws {
        for group in 0..<groups {
            for folder in 0..<folders {
                let path = root + "/g\(group)/f\(folder)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                for file in 0..<files {
                    try "folder \(group)/\(folder), file \(file)\n".write(toFile: path + "/doc-\(file).txt", atomically: false, encoding: .utf8)
                }
            }
        }
    }

    /// Small files, large random files, compressible text, symlinks (relative, absolute, dangling),
    /// empty directories, unusual names and modes, and mtimes with nanoseconds.
    public static func makeSampleTree(at root: String, seed: UInt64 = 42, largeFileSize: Int = 3 << 20) throws {
        var rng = SeededGenerator(seed: seed)
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/studies/2024/patient-001", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/studies/2025", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/empty/nested-empty", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/docs", withIntermediateDirectories: true)
        for i in 0..<40 {
            let body = rng.text(Int(rng.next() % 30_000) + 1)
            try body.write(to: URL(fileURLWithPath: root + "/studies/2024/patient-001/note-\(i).txt"))
        }
        for i in 0..<10 {
            try rng.bytes(Int(rng.next() % 4096)).write(to: URL(fileURLWithPath: root + "/studies/2025/small-\(i).bin"))
        }
        try rng.bytes(largeFileSize).write(to: URL(fileURLWithPath: root + "/studies/2024/image-large.dcm"))
        try rng.bytes(largeFileSize / 2 + 12345).write(to: URL(fileURLWithPath: root + "/studies/2025/image-b.dcm"))
        try rng.text(2 << 20).write(to: URL(fileURLWithPath: root + "/docs/log.csv"))
        try Data().write(to: URL(fileURLWithPath: root + "/docs/empty-file"))
        let unusual = ["with space.txt", "ümlaut-ß-日本.txt", "-leading-dash", "quote\"and'apostrophe", "new\nline", "tab\tname", ".hidden", "a%b*c?.txt"]
        for name in unusual {
            try rng.text(100 + Int(rng.next() % 1000)).write(to: URL(fileURLWithPath: root + "/docs/" + name))
        }
        chmod(root + "/docs/with space.txt", 0o600)
        chmod(root + "/docs/-leading-dash", 0o755)
        chmod(root + "/docs/.hidden", 0o4640)
        symlink("../studies/2024/image-large.dcm", root + "/docs/link-relative")
        symlink("/etc/hostname", root + "/docs/link-absolute")
        symlink("does/not/exist", root + "/docs/link-dangling")
        chmod(root + "/studies/2025", 0o750)
        // Set distinctive mtimes, nanoseconds included, depth-first so directories keep theirs.
        var paths = (fm.enumerator(atPath: root)?.allObjects as? [String]) ?? []
        paths.sort { $0.count > $1.count }
        for (i, path) in paths.enumerated() {
            var times = [timespec(tv_sec: 1_600_000_000 + i * 3601, tv_nsec: 123_456_789 + i),
                         timespec(tv_sec: 1_600_000_000 + i * 3601, tv_nsec: 123_456_789 + i)]
            utimensat(AT_FDCWD, root + "/" + path, &times, AT_SYMLINK_NOFOLLOW)
        }
    }

    /// Writes `count` random bytes.
    public static func writeRandomFile(_ path: String, size: Int, seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        try rng.bytes(size).write(to: URL(fileURLWithPath: path))
    }
}
