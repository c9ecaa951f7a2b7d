import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// A directory's entries are examined (lstat) in line, and those to read wait for one of the 16
/// tasks the directory may run at once: an entry replaced during that wait must be backed up as
/// it is then, not skipped as "replaced while the backup ran" when it is opened.
@Suite(.serialized) struct BackupWindowCommandTests {
    @Test func aFileReplacedWhileItWaitsForATaskIsBackedUpAsItIsNow() async throws {
        try await withTemporaryDirectory { dir in
            let src = dir + "/src"
            try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
            for i in 0..<20 {
                try Data("old content \(i)\n".utf8).write(to: URL(fileURLWithPath: src + String(format: "/f%02d", i)))
            }
            _ = try await TestRepository.create(at: dir + "/repo")
            let environment = ["BUNKER_REPOSITORY": dir + "/repo", "BUNKER_PASSWORD": TestRepository.password, "BUNKER_DATA_DIR": dir + "/data"]

            // The first backup reads every file: f16, the 17th, waits for one of the 16 before it.
            let held = try WriterClaimCommandTests.Held(["backup", src], at: "backup-window-wait", environment: environment, dir: dir, name: "held")
            defer { kill(held.pid, SIGKILL) }
            try held.waitUntilHeld()
            try Data("new content, another inode\n".utf8).write(to: URL(fileURLWithPath: src + "/f16.new"))
            #expect(rename(src + "/f16.new", src + "/f16") == 0)
            held.release()
            let status = try held.finish()
            #expect(status == 0, "\(held.output)")
            #expect(!held.output.contains("replaced"), "\(held.output)")

            let restore = try BunkerProcess.run(["restore", "latest", "--target", dir + "/out"], environment: environment)
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try String(contentsOfFile: dir + "/out/src/f16", encoding: .utf8) == "new content, another inode\n")
            #expect(compareTrees(src, dir + "/out/src") == [])
        }
    }
}
