import BunkerCore
import Foundation
import Hummingbird
import NIOCore

/// An error as the API answers it: a status, `{"error": code, "message": …}` and any headers
/// (`Retry-After`).
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var headers: HTTPFields

    init(_ status: HTTPResponse.Status, code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try JSONEncoder().encode(["error": code, "message": message])
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The answer to a service-layer error: its code, its message without the server's paths
    /// (``withoutPaths(_:)``), a status that fits.
    init(_ error: BunkerError) {
        let status: HTTPResponse.Status
        switch error.code {
        case .invalidArgument: status = .badRequest
        case .authenticationFailed: status = .unauthorized
        case .accountLocked: status = HTTPResponse.Status(code: 423, reasonPhrase: "Locked")
        case .userNotFound, .tokenNotFound, .snapshotNotFound, .objectNotFound: status = .notFound
        case .repositoryLocked: status = .conflict
        case .storageFull: status = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
        default: status = .internalServerError
        }
        self.init(status, code: error.code.rawValue, Self.withoutPaths(error.message))
    }

    /// What a path on the server is shown as.
    static let pathPlaceholder = "[server path]"

    private static let absolutePath = try! NSRegularExpression(pattern: #"(^|[\s("'`=])/(?!api/)[^\s"'`,;()]*[^\s"'`,;().:]"#)

    /// `message` with every absolute file path (a word that starts with `/`, other than an API
    /// route) replaced by ``pathPlaceholder``: the data directory, the repository and the
    /// sources are the server's business, not its clients'. The server's log keeps them.
    static func withoutPaths(_ message: String) -> String {
        let range = NSRange(message.startIndex..., in: message)
        return absolutePath.stringByReplacingMatches(in: message, range: range, withTemplate: "$1" + NSRegularExpression.escapedTemplate(for: pathPlaceholder))
    }
}

/// Turns every error into JSON `{"error","message"}`: a ``BunkerError`` by its code (its message
/// without the server's paths), one of Hummingbird's (a malformed body, an unknown route) by its
/// status, and anything else into a 500 that names no internals (the log has them).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// A decoding error's text for people: the decoder names no key when the body as a whole
    /// is of the wrong kind (`null`, a list), and says "Type mismatch for `` key".
    static func readable(_ body: String?) -> String? {
        guard let body else { return nil }
        if body.contains("for `` key") {
            return "The request body is not a JSON object with the fields this route takes (GET /api/v1/openapi.json describes them)."
        }
        // "Cannot initialize BackupType from invalid String value everything": a field outside
        // its set of values.
        if let range = body.range(of: " from invalid String value "), body.contains("Cannot initialize ") {
            let value = body[range.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: ". "))
            return "\"\(value)\" is not one of the values this field takes (GET /api/v1/openapi.json lists them)."
        }
        return body
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as BunkerError {
            let answer = APIError(error)
            if answer.status.code >= 500 {
                context.logger.error("request failed: \(error.code.rawValue): \(error.message)")
            }
            throw answer
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "invalid_request", "The request body is larger than the \(context.maxUploadSize) bytes this server accepts.")
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "not_found" : error.status.code < 500 ? "invalid_request" : "internal"
            throw APIError(error.status, code: code, Self.readable(error.body) ?? error.status.reasonPhrase)
        } catch {
            context.logger.error("request failed: \(error)")
            throw APIError(.internalServerError, code: "internal", "The server failed to answer; the error is in its log.")
        }
    }
}
