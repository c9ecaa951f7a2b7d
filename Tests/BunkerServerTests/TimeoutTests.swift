import BunkerServer
import BunkerService
import BunkerTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// A plain TCP connection to the live server, as a slow (or hostile) client makes it.
final class RawConnection {
    private let fd: Int32
    /// What the server sent, as read by ``closedByServer(within:)``.
    private(set) var received = ""

    /// `receiveBuffer`: the socket's receive buffer, in bytes (small: a client that reads
    /// nothing stops the server's writes soon).
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0, "connect: \(String(cString: strerror(errno)))")
    }

    deinit { close(fd) }

    /// Sends `text`; false once the server has closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool {
        Glibc.send(fd, text, text.utf8.count, Int32(MSG_NOSIGNAL)) == text.utf8.count
    }

    /// Whether the server closes the connection within `seconds` (reading what it answers
    /// first into ``received``).
    func closedByServer(within seconds: Int) -> Bool {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
            received += String(decoding: buffer[0..<n], as: UTF8.self)
        }
    }
}

/// A live server with `limits`, over a fresh data directory.
private func withLiveServer(_ limits: ServerLimits, _ test: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withTemporaryDirectory { dir in
        var configuration = try Configuration(text: "data_dir = \"\(dir)/data\"\n", file: dir + "/bunker.toml", environment: [:])
        configuration.server.listen = "127.0.0.1:0"
        var options = Catalog.Options()
        options.bcryptCost = 4
        let catalog = try Catalog(dataDirectory: configuration.dataDirectory, options: options)
        let app = try await buildApplication(configuration, catalog: catalog, limits: limits)
        try await app.test(.live) { client in try await test(try #require(client.port)) }
    }
}

@Suite struct TimeoutTests {
    @Test func aConnectionWhoseRequestHeadStopsArrivingIsClosedAfterTheIdleTimeout() async throws {
        var limits = ServerLimits()
        limits.idleTimeout = .seconds(1)
        try await withLiveServer(limits) { port in
            let connection = try RawConnection(port: port)
            #expect(connection.send("GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n"))
            #expect(connection.closedByServer(within: 10), "a half-sent head does not hold the connection")

            let idle = try RawConnection(port: port)
            #expect(idle.closedByServer(within: 10), "nor does a connection that sends nothing")
        }
    }

    @Test func aRequestBodyTrickledPastTheRequestTimeoutIsCutOff() async throws {
        var limits = ServerLimits()
        limits.idleTimeout = .seconds(5)
        limits.requestTimeout = .seconds(1)
        try await withLiveServer(limits) { port in
            let connection = try RawConnection(port: port)
            #expect(connection.send("POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"))
            // A byte every 0.3 s keeps the idle timeout from firing; the request timeout does.
            var stillOpen = true
            for _ in 0..<12 where stillOpen {
                try await Task.sleep(for: .milliseconds(300))
                stillOpen = connection.send("{")
            }
            #expect(!stillOpen || connection.closedByServer(within: 3), "a request must arrive whole within the request timeout")
        }
    }

    @Test func aRequestThatArrivesInTimeIsAnswered() async throws {
        var limits = ServerLimits()
        limits.idleTimeout = .seconds(1)
        limits.requestTimeout = .seconds(1)
        try await withLiveServer(limits) { port in
            let connection = try RawConnection(port: port)
            #expect(connection.send("GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"))
            #expect(connection.closedByServer(within: 10), "answered, then closed when idle")
            #expect(connection.received.hasPrefix("HTTP/1.1 200"), "\(connection.received)")
        }
    }
}
