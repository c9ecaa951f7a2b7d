import Foundation

/// A proxy in front of a real S3 server (``SeaweedFS``) that injects what the server will not
/// show on its own: a 503 with `Retry-After`, a dropped connection, a body cut short, a listing
/// that stops early or leaves objects out (`scripts/test-s3-fault-proxy.py`, with Debian's Python).
public final class S3FaultProxy: Sendable {
    /// One fault: which requests it hits, what it does, and how many times.
    public struct Rule: Sendable, Encodable {
        public enum Action: String, Sendable, Encodable {
            /// Answer `status` (with an S3 error `code` and `Retry-After`) without forwarding.
            case status
            /// Close the connection without forwarding or answering.
            case drop
            /// Forward, then close the connection instead of answering (the answer is lost).
            case forwardThenDrop = "forward-then-drop"
            /// Forward, then send the answer's headers and half its body, and close.
            case truncate
            /// Forward, then remove the listing's `NextContinuationToken` (it still says it is truncated).
            case dropContinuationToken = "drop-continuation-token"
            /// Forward, then make the listing say it is complete after this page (a silent cut).
            case endListing = "end-listing"
            /// Forward, then leave the first object out of the listing's page.
            case dropEntries = "drop-entries"
            /// Forward without the object-lock headers, signed again with `accessKey` and
            /// `secretKey`: a server that accepts a retention and ignores it.
            case stripRetention = "strip-retention"
        }

        public var id: String
        public var method: String?
        /// A substring of the request's path.
        public var path: String?
        /// A substring of the request's query.
        public var query: String?
        /// The name of a request header that must be present.
        public var header: String?
        public var action: Action
        public var status: Int?
        public var code: String?
        public var retryAfter: String?
        public var times: Int?
        /// The credentials a `strip-retention` rule signs with (the server's own).
        public var accessKey: String?
        public var secretKey: String?

        public init(id: String, method: String? = nil, path: String? = nil, query: String? = nil, header: String? = nil,
                    action: Action, status: Int? = nil, code: String? = nil, retryAfter: String? = nil, times: Int? = nil,
                    accessKey: String? = nil, secretKey: String? = nil) {
            (self.id, self.method, self.path, self.query, self.header) = (id, method, path, query, header)
            (self.action, self.status, self.code, self.retryAfter, self.times) = (action, status, code, retryAfter, times)
            (self.accessKey, self.secretKey) = (accessKey, secretKey)
        }

        /// A rule that strips the object-lock headers of every request to `server`.
        public static func stripRetention(signingFor server: SeaweedFS) -> Rule {
            Rule(id: "strip-retention", header: "x-amz-object-lock-mode", action: .stripRetention,
                 accessKey: server.accessKeyID, secretKey: server.secretAccessKey)
        }

        enum CodingKeys: String, CodingKey {
            case id, method, path, query, header, action, status, code, times
            case retryAfter = "retry_after"
            case accessKey = "access_key"
            case secretKey = "secret_key"
        }
    }

    public let port: Int
    public let directory: String
    private let pid: pid_t

    /// The endpoint to give the storage instead of the server's.
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, directory: String, pid: pid_t) {
        self.port = port
        self.directory = directory
        self.pid = pid
    }

    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`) keeping its files in `directory`.
    public static func start(upstream: Int, in directory: String) throws -> S3FaultProxy {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = try freeTCPPort()
        FileManager.default.createFile(atPath: directory + "/rules.json", contents: Data("[]".utf8))
        FileManager.default.createFile(atPath: directory + "/requests.log", contents: Data())
        let pid = try startTestScript("test-s3-fault-proxy.py", [
            "--port", String(port), "--upstream", "127.0.0.1:\(upstream)",
            "--rules", directory + "/rules.json", "--log", directory + "/requests.log",
        ], log: directory + "/proxy.log", what: "S3 fault proxy")
        return S3FaultProxy(port: port, directory: directory, pid: pid)
    }

    /// Replaces the rules (read by the proxy on every request).
    public func inject(_ rules: [Rule]) throws {
        let data = try JSONEncoder().encode(rules)
        try data.write(to: URL(fileURLWithPath: directory + "/rules.json.new"))
        rename(directory + "/rules.json.new", directory + "/rules.json")
    }

    /// Every request so far, one line each: `RULE METHOD PATH?QUERY OUTCOME` (`-` for no rule).
    public var requests: [String] {
        ((try? String(contentsOfFile: directory + "/requests.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// The requests a rule hit.
    public func hits(_ id: String) -> [String] { requests.filter { $0.hasPrefix(id + " ") } }

    public func stop() {
        kill(pid, SIGKILL)
        _ = try? waitForExit(pid, "the S3 fault proxy")
    }
}
