import BunkerCore
import Foundation
import Hummingbird
import NIOCore

/// An error as the API answers it: a status and `{"error": code, "message": …}`.
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String

    init(_ status: HTTPResponse.Status, code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try JSONEncoder().encode(["error": code, "message": message])
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The answer to a service-layer error: its code, its message, a status that fits.
    init(_ error: BunkerError) {
        let status: HTTPResponse.Status
        switch error.code {
        case .invalidArgument: status = .badRequest
        case .authenticationFailed: status = .unauthorized
        case .accountLocked: status = HTTPResponse.Status(code: 423, reasonPhrase: "Locked")
        case .userNotFound, .snapshotNotFound, .objectNotFound: status = .notFound
        case .repositoryLocked: status = .conflict
        case .storageFull: status = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
        default: status = .internalServerError
        }
        self.init(status, code: error.code.rawValue, error.message)
    }
}

/// Turns every error into JSON `{"error","message"}`: a ``BunkerError`` by its code, one of
/// Hummingbird's (a malformed body, an unknown route) by its status, and anything else into a
/// 500 that names no internals (the log has them).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as BunkerError {
            throw APIError(error)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "invalid_request", "The request body is larger than the \(context.maxUploadSize) bytes this server accepts.")
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "not_found" : error.status.code < 500 ? "invalid_request" : "internal"
            throw APIError(error.status, code: code, error.body ?? error.status.reasonPhrase)
        } catch {
            context.logger.error("request failed: \(error)")
            throw APIError(.internalServerError, code: "internal", "The server failed to answer; the error is in its log.")
        }
    }
}
