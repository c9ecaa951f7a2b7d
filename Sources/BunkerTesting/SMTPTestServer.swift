import Foundation

/// A real SMTP server for one test: aiosmtpd (Debian's `python3-aiosmtpd`) on 127.0.0.1, with
/// STARTTLS, implicit TLS or neither, AUTH PLAIN and LOGIN, and a self-signed certificate made
/// for it with `openssl`. Received messages land in ``spool`` as `NNNN.eml` and `NNNN.json`.
public final class SMTPTestServer: Sendable {
    public enum Mode: String, Sendable { case starttls, tls, plain }

    public let port: Int
    public let mode: Mode
    public let directory: String
    public let user = "bunker"
    public let password = "s3cret-for-tests"
    /// The certificate (PEM) clients must trust.
    public var certificateFile: String { directory + "/cert.pem" }
    public var spool: String { directory + "/spool" }
    private let pid: pid_t

    private init(port: Int, mode: Mode, directory: String, pid: pid_t) {
        self.port = port
        self.mode = mode
        self.directory = directory
        self.pid = pid
    }

    /// Starts a server in `directory` (created); `port` nil picks a free one.
    public static func start(mode: Mode, in directory: String, port: Int? = nil) throws -> SMTPTestServer {
        try FileManager.default.createDirectory(atPath: directory + "/spool", withIntermediateDirectories: true)
        if mode != .plain && !FileManager.default.fileExists(atPath: directory + "/cert.pem") {
            let made = try spawnAndWait("/usr/bin/openssl", [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
            ], outputFile: directory + "/openssl.log")
            guard made.status == 0 else { throw FixtureError("openssl could not make a certificate: \(made.output)") }
        }
        let port = try port ?? freeTCPPort()
        let log = directory + "/server-\(port).log"
        let pid = try startTestScript("test-smtp-server.py", [
            "--port", String(port), "--mode", mode.rawValue, "--cert", directory + "/cert.pem",
            "--key", directory + "/key.pem", "--user", "bunker", "--password", "s3cret-for-tests", "--spool", directory + "/spool",
        ], log: log, what: "test SMTP server (is python3-aiosmtpd installed? `make test` installs it)")
        return SMTPTestServer(port: port, mode: mode, directory: directory, pid: pid)
    }

    /// The messages received so far, oldest first: the raw message and its envelope.
    public func messages() -> [(message: String, envelope: [String: Any])] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { $0.hasSuffix(".eml") }.sorted()
        return names.compactMap { name in
            let base = spool + "/" + String(name.dropLast(4))
            guard let message = try? String(contentsOfFile: base + ".eml", encoding: .utf8),
                  let data = FileManager.default.contents(atPath: base + ".json"),
                  let envelope = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return (message, envelope)
        }
    }

    /// Stops the server (the spool stays).
    public func stop() {
        kill(pid, SIGKILL)
        _ = try? waitForExit(pid, "the test SMTP server")
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
public func freeTCPPort() throws -> Int {
    let (fd, port) = try listeningSocket()
    close(fd)
    return port
}

/// A socket listening on 127.0.0.1 on a free port (for fakes that misbehave in ways a real
/// server will not); the caller closes it.
public func listeningSocket(backlog: Int32 = 4) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw FixtureError("socket failed") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0, listen(fd, backlog) == 0 else {
        close(fd)
        throw FixtureError("bind or listen on 127.0.0.1 failed: \(String(cString: strerror(errno)))")
    }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// Starts one of the repository's `scripts/test-*.py` servers with Debian's Python and waits
/// until it prints READY; returns its process id.
func startTestScript(_ name: String, _ arguments: [String], log: String, what: String) throws -> pid_t {
    let pid = try spawn("/usr/bin/python3", [repositoryRoot() + "/scripts/" + name] + arguments, outputFile: log)
    for _ in 0..<200 {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        if text.contains("READY") { return pid }
        if text.contains("Traceback") || text.contains("Error") { break }
        usleep(50_000)
    }
    kill(pid, SIGKILL)
    _ = try? waitForExit(pid, what)
    throw FixtureError("The \(what) did not start:\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
}

/// The package's root directory (where Package.swift is), from this file's place in it.
func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}
