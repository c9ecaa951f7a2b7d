import BunkerCore
import BunkerServer
import BunkerService
import BunkerTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// HTTPS when `[server]` names a certificate and a key.
@Suite struct TLSTests {
    /// A self-signed certificate for 127.0.0.1 and its key, made with openssl.
    private func makeCertificate(in dir: String) throws {
        let made = try shell("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 -keyout key.pem -out cert.pem", in: dir)
        try #require(made.status == 0, "\(made.output)")
    }

    @Test func aConfiguredCertificateAndKeyServeHTTPSOnly() async throws {
        try await withTemporaryDirectory { dir in
            try makeCertificate(in: dir)
            let text = """
                data_dir = "\(dir)/data"

                [server]
                listen = "127.0.0.1:0"
                tls_certificate = "cert.pem"
                tls_key = "key.pem"
                """
            let configuration = try Configuration(text: text, file: dir + "/bunker.toml", environment: [:])
            #expect(configuration.server.tlsCertificateFile == dir + "/cert.pem")
            let app = try await buildApplication(configuration)
            try await app.test(.ahc(.https)) { client in
                let response = try await client.execute(uri: "/api/v1/health", method: .get)
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"ok\""))
                let port = try #require(client.port)
                let plain = try shell("curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:\(port)/api/v1/health")
                #expect(plain.output != "200", "plain HTTP is not answered on a TLS port")
                let verified = try shell("curl -s --max-time 5 --cacert '\(dir)/cert.pem' https://127.0.0.1:\(port)/api/v1/health")
                #expect(verified.status == 0 && verified.output.contains("ok"), "\(verified.output)")
            }
        }
    }

    @Test func aCertificateWithoutAKeyIsAConfigurationErrorNamingTheLine() throws {
        let text = """
            [server]
            tls_certificate = "/etc/bunker/cert.pem"
            """
        let error = try #require(throws: BunkerError.self) { try Configuration(text: text, file: "/tmp/bunker.toml", environment: [:]) }
        #expect(error.message.contains("bunker.toml:2"))
        #expect(error.message.contains("tls_key"))
    }

    @Test func anUnreadableCertificateIsAClearErrorNotACrash() async throws {
        try await withTemporaryDirectory { dir in
            try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: dir + "/cert.pem"))
            try Data("not a key".utf8).write(to: URL(fileURLWithPath: dir + "/key.pem"))
            var configuration = try Configuration(text: "data_dir = \"\(dir)/data\"\n", file: dir + "/bunker.toml", environment: [:])
            configuration.server.tlsCertificateFile = dir + "/cert.pem"
            configuration.server.tlsKeyFile = dir + "/key.pem"
            let error = await #expect(throws: BunkerError.self) { _ = try await buildApplication(configuration) }
            #expect(error?.message.contains("tls_certificate") == true)
        }
    }
}
