import HTTPTypes
import Hummingbird
import NIOCore

/// Serves the web console: `GET /` is its page, `GET /console/<file>` its styles and scripts,
/// all from ``ConsoleAssets`` (compiled into the binary, so a copied `bunker` still has them).
/// Every other request goes on to the API's routes.
///
/// A middleware, as Hummingbird's own `FileMiddleware` is, rather than routes: the console is not
/// part of the API, and the OpenAPI document describes exactly the routes the router has.
/// A file is found by its exact name in a fixed table, so no path can reach anything else.
struct ConsoleMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Scripts and styles only from this server's own files (no inline script or style, so an
    /// injected `<script>` or `onclick` does not run), API calls only to it, and no framing.
    static var securityHeaders: HTTPFields {
        var headers = HTTPFields()
        headers[.contentSecurityPolicy] = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        // The files change with the binary: revalidate rather than keep a stale script.
        headers[.cacheControl] = "no-cache"
        return headers
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head, let name = Self.assetName(request.uri.path) else {
            return try await next(request, context)
        }
        guard let asset = ConsoleAssets.files[name] else {
            throw APIError(.notFound, code: "not_found", "The console has no file \(name).")
        }
        var headers = Self.securityHeaders
        headers[.contentType] = asset.contentType
        let body = request.method == .head ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(string: asset.body))
        headers[.contentLength] = String(asset.body.utf8.count)
        return Response(status: .ok, headers: headers, body: body)
    }

    /// The asset a path asks for: `index.html` for `/`, the rest of the path under `/console/`;
    /// nil for any other path (an API route).
    static func assetName(_ path: String) -> String? {
        if path == "/" || path == "/index.html" { return "index.html" }
        guard path.hasPrefix("/console/") else { return nil }
        return String(path.dropFirst("/console/".count))
    }
}
