import BunkerTesting
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `bunker serve` as an operator starts it: the real binary on a loopback port.
@Suite(.serialized) struct ServeCommandTests {
    @Test func serveCreatesTheFirstAdministratorAnswersAndAnchorsTheTrailWhenStopped() async throws {
        try await withTemporaryDirectory { dir in
            let port = Int.random(in: 20_000..<40_000)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: BunkerProcess.executable)
            process.arguments = ["serve", "--listen", "127.0.0.1:\(port)"]
            process.environment = [
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": dir,
                "BUNKER_DATA_DIR": dir + "/data", "BUNKER_ADMIN_PASSWORD": "admin-password",
            ]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            defer { if process.isRunning { process.terminate() } }

            let base = "http://127.0.0.1:\(port)/api/v1"
            var healthy = false
            for _ in 0..<100 where !healthy {
                if let (_, response) = try? await URLSession.shared.data(from: URL(string: base + "/health")!) {
                    healthy = (response as? HTTPURLResponse)?.statusCode == 200
                } else {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(healthy, "the server answered /health within 10 s")

            var login = URLRequest(url: URL(string: base + "/auth/login")!)
            login.httpMethod = "POST"
            login.setValue("application/json", forHTTPHeaderField: "Content-Type")
            login.httpBody = Data(#"{"username":"admin","password":"admin-password"}"#.utf8)
            let (body, response) = try await URLSession.shared.data(for: login)
            #expect((response as? HTTPURLResponse)?.statusCode == 200, "\(String(decoding: body, as: UTF8.self))")

            process.terminate()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "SIGTERM stops the server cleanly")
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(printed.contains("Created the first administrator admin"), "\(printed)")
            #expect(!printed.contains("admin-password"), "a given password is never printed")

            // user.add, then auth.login: the stop anchored the head, row 2.
            let anchors = try String(contentsOfFile: dir + "/data/audit-anchors.log", encoding: .utf8).split(separator: "\n")
            #expect(anchors.last?.split(separator: " ")[1] == "2", "\(anchors)")
        }
    }
}
