import BunkerCore
import Foundation

/// Backups of a small tree over several days, each generation replacing one incompressible file,
/// so that forgetting a generation leaves data for prune to delete or repack.
public enum Generations {
    /// Backs up `count` generations of `dir/src`, advancing `clock` a day after each; a copy of
    /// each generation (times kept) is left in `dir/generation-N` to compare restores with.
    public static func backUp(_ repo: Repository, clock: TestClock?, in dir: String, count: Int = 3) async throws -> [BackupResult] {
        try FileManager.default.createDirectory(atPath: dir + "/src/notes", withIntermediateDirectories: true)
        try TreeGenerator.writeRandomFile(dir + "/src/shared.bin", size: 700 << 10, seed: 1)
        var rng = SeededGenerator(seed: 10)
        for i in 0..<5 { try rng.text(20_000).write(to: URL(fileURLWithPath: dir + "/src/notes/\(i).txt")) }
        var results: [BackupResult] = []
        for generation in 0..<count {
            try TreeGenerator.writeRandomFile(dir + "/src/scan.dcm", size: 1536 << 10, seed: UInt64(100 + generation))
            try copyPreservingTimes(dir + "/src", to: dir + "/generation-\(generation)")
            results.append(try await TestRepository.backup(repo, [dir + "/src"]))
            clock?.advance(by: 86400)
        }
        return results
    }

    /// `cp -a`: the copy keeps modification times, so that restores can be compared with it.
    public static func copyPreservingTimes(_ source: String, to target: String) throws {
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = ["-a", source, target]
        try cp.run()
        cp.waitUntilExit()
        guard cp.terminationStatus == 0 else {
            throw BunkerError(.sourceIO, "cp -a \(source) \(target) failed with status \(cp.terminationStatus)")
        }
    }
}
