import Foundation

/// A plain web server on loopback (Python's `http.server` over an empty directory): a real
/// server that is not S3, answering every path with HTTP 404 and an HTML page.
public final class PlainWebServer: Sendable {
    public let port: Int
    private let pid: pid_t

    /// The server's address, as an S3 endpoint would be given.
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, pid: pid_t) {
        self.port = port
        self.pid = pid
    }

    /// Starts a server serving `directory` and waits until it accepts connections.
    public static func start(serving directory: String) throws -> PlainWebServer {
        let port = try freeTCPPort()
        let pid = try spawn("/usr/bin/python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory],
                            outputFile: directory + "-server.log")
        var tries = 0
        while !accepts(port: port), tries < 200 {
            usleep(50_000)
            tries += 1
        }
        guard tries < 200 else {
            kill(pid, SIGKILL)
            _ = try? waitForExit(pid, "the plain web server")
            throw FixtureError("The plain web server did not start on port \(port).")
        }
        return PlainWebServer(port: port, pid: pid)
    }

    public func stop() {
        kill(pid, SIGKILL)
        _ = try? waitForExit(pid, "the plain web server")
    }
}
