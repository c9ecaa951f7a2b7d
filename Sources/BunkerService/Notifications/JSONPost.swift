import AsyncHTTPClient
import BunkerCore
import Foundation
import NIOCore

/// One JSON POST to a notification service (a webhook, PagerDuty, Slack), with the outcome every
/// such service shares: a 2xx answer delivers; a connection problem, a timeout, 429 or 5xx is
/// worth retrying (``WebhookFailure/transient``); any other answer is not.
struct JSONPost {
    /// How errors name the receiver: `webhook ops (https://chat.example.com/…)`.
    var what: String
    var url: String
    var timeout: Double
    var headers: [(String, String)] = []

    func send(_ body: Data) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Bunker/\(bunkerVersion)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        } catch {
            throw BunkerError(.network, "\(what) could not be reached: \(error).", cause: WebhookFailure(transient: true))
        }
        // The answer's body is not needed; read a little of it for the error message.
        let answer = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let transient = status == 429 || status >= 500
            throw BunkerError(.network, "\(what) answered \(status)\(answer.isEmpty ? "" : ": \(answer.prefix(200))").", cause: WebhookFailure(transient: transient))
        }
    }

    /// The URL as errors, logs and the audit trail show it: scheme, host and port only, since a
    /// chat's incoming-webhook path is itself a secret.
    static func shown(_ url: String) -> String {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, let host = parts.host else { return "(the configured URL)" }
        return "\(scheme)://\(host)\(parts.port.map { ":\($0)" } ?? "")/…"
    }

    static func encoded(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)) ?? Data()
    }
}
