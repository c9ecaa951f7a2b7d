import BunkerTesting
import Foundation
import Testing

@testable import bunker

/// The systemd units in docs/systemd are checked with `systemd-analyze verify`, pointed at the
/// binary just built, and their commands are ones this binary accepts.
@Suite struct SystemdUnitTests {
    static let analyzer = "/usr/bin/systemd-analyze"
    static var root: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: analyzer), "systemd-analyze is not installed"))
    func unitsPassSystemdAnalyzeVerify() async throws {
        try await withTemporaryDirectory { dir in
            let units = ["bunker.service", "bunker-backup.service", "bunker-backup.timer"]
            for unit in units {
                let text = try String(contentsOfFile: Self.root + "/docs/systemd/" + unit, encoding: .utf8)
                try text.replacingOccurrences(of: "/usr/local/bin/bunker", with: BunkerProcess.executable)
                    .write(toFile: dir + "/" + unit, atomically: true, encoding: .utf8)
            }
            let result = try spawnAndWait(Self.analyzer, ["verify", "--man=no"] + units.map { dir + "/" + $0 }, outputFile: dir + "/verify.log")
            #expect(result.status == 0, "\(result.output)")
            #expect(!result.output.contains(dir), "no warning about the units: \(result.output)")
        }
    }

    @Test func theUnitsCommandsAreOnesBunkerAccepts() throws {
        let text = try ["bunker.service", "bunker-backup.service"].map { try String(contentsOfFile: Self.root + "/docs/systemd/" + $0, encoding: .utf8) }.joined(separator: "\n")
        let commands = text.split(separator: "\n").filter { $0.hasPrefix("ExecStart") }.map { line in
            line.split(separator: "=", maxSplits: 1)[1].split(separator: " ").dropFirst().map(String.init)
        }
        #expect(commands.count == 4)
        for arguments in commands {
            #expect(throws: Never.self, "bunker \(arguments.joined(separator: " "))") { _ = try BunkerCommand.parseAsRoot(arguments) }
        }
        #expect(throws: (any Error).self, "the check itself refuses a wrong option") { _ = try BunkerCommand.parseAsRoot(["backup", "--bogus"]) }
    }
}
