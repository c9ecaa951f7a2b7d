import Foundation

/// A real HTTP receiver for webhook tests (`scripts/test-webhook-receiver.py`) on 127.0.0.1:
/// it answers the first `failFirst` posts with 503 and the rest with 200, and keeps each post.
public final class WebhookTestReceiver: Sendable {
    public let port: Int
    public let directory: String
    private let pid: pid_t

    /// One post as received.
    public struct Post: Sendable {
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var status: Int
    }

    private init(port: Int, directory: String, pid: pid_t) {
        self.port = port
        self.directory = directory
        self.pid = pid
    }

    public var url: String { "http://127.0.0.1:\(port)/hooks/bunker" }

    public static func start(in directory: String, failFirst: Int = 0) throws -> WebhookTestReceiver {
        try FileManager.default.createDirectory(atPath: directory + "/spool", withIntermediateDirectories: true)
        let port = try freeTCPPort()
        let pid = try startTestScript("test-webhook-receiver.py", ["--port", String(port), "--spool", directory + "/spool", "--fail-first", String(failFirst)],
                                      log: directory + "/receiver.log", what: "test webhook receiver")
        return WebhookTestReceiver(port: port, directory: directory, pid: pid)
    }

    /// The posts received so far, oldest first.
    public func posts() -> [Post] {
        let spool = directory + "/spool"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return names.compactMap { name in
            guard let data = FileManager.default.contents(atPath: spool + "/" + name),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return Post(path: object["path"] as? String ?? "", headers: object["headers"] as? [String: String] ?? [:],
                        body: object["body"] as? String ?? "", status: object["status"] as? Int ?? 0)
        }
    }

    public func stop() {
        kill(pid, SIGKILL)
        _ = try? waitForExit(pid, "the test webhook receiver")
    }
}
