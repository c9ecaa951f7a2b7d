import Hummingbird

/// `GET /openapi.json`: the API's OpenAPI 3.1 document, without login (it holds no data).
struct OpenAPIController {
    func register(on group: RouterGroup<BunkerRequestContext>) {
        group.get("openapi.json") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
    }
}
