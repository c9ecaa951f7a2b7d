import AsyncHTTPClient
import BunkerCore
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// One S3 request, before it is signed.
struct S3Request: Sendable {
    var method: HTTPMethod
    /// The object key; nil addresses the bucket.
    var key: String?
    var query: [(String, String)] = []
    var headers: [(String, String)] = []
    var body = Data()
    /// The hex SHA-256 of `body` when the caller has it already (an upload works it out once
    /// for its checksum and metadata too); nil to have it computed here.
    var payloadHash: String?
}

/// What the server answered: status, headers and the whole body.
struct S3Response: Sendable {
    let status: Int
    let headers: HTTPHeaders
    let body: Data

    var isSuccess: Bool { (200..<300).contains(status) }

    func header(_ name: String) -> String? { headers.first(name: name) }

    /// The `<Code>` of an S3 error document, if the body is one.
    var errorCode: String? { S3XML.first("Code", in: body) }
}

/// Sends signed requests to one bucket over AsyncHTTPClient and turns transport failures into
/// ``BunkerError``s: whatever could pass with time (a refused or reset connection, a timeout)
/// is ``BunkerError/Code/storageUnavailable``, for ``RetryingStorage`` to retry.
struct S3Client: Sendable {
    let endpoint: S3Endpoint
    let signer: S3Signer?
    let credentialsSource: String
    /// How long one request may take, on top of a second per MiB of body it carries or fetches.
    let timeout: Duration

    /// The process's HTTP client for S3. AsyncHTTPClient's shared one keeps trying to connect,
    /// for up to 90 s a request, to a server that refuses the connection, beneath
    /// ``RetryingStorage``'s own retries: an endpoint nobody listens at took eleven silent
    /// minutes to fail. Here a connection that cannot be made fails its request at once (or
    /// after 10 s without an answer), and ``RetryingStorage`` retries it with backoff, saying so.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.timeout.connect = .seconds(10)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// Sends `request`; `expecting` bounds the body read (answers larger than it are an error).
    func send(_ request: S3Request, expecting bodyLimit: Int = 1 << 20) async throws -> S3Response {
        guard let signer else {
            throw BunkerError(.permissionDenied, "No S3 credentials were found for \(endpoint.bucket). " + S3Environment.whereCredentialsComeFrom)
        }
        let path = endpoint.path(of: request.key)
        let query = S3Signer.canonicalQuery(request.query)
        var headers = [("host", endpoint.host)] + request.headers
        let payloadHash = request.payloadHash ?? (request.body.isEmpty ? S3Signer.emptyPayloadHash : S3Signer.hex(SHA256.hash(data: request.body)))
        signer.sign(method: request.method.rawValue, path: path, query: request.query, headers: &headers, payloadHash: payloadHash, date: Date())

        var http = HTTPClientRequest(url: "\(endpoint.scheme)://\(endpoint.host)\(path)\(query.isEmpty ? "" : "?" + query)")
        http.method = request.method
        for (name, value) in headers { http.headers.add(name: name, value: value) }
        if !request.body.isEmpty || request.method == .PUT || request.method == .POST {
            http.body = .bytes(ByteBuffer(bytes: request.body))
        }
        let megabytes = Int64((max(request.body.count, bodyLimit == Int.max ? 0 : bodyLimit) >> 20) + 1)
        let deadline = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + megabytes * 1_000_000_000)
        let what = "\(request.method.rawValue) \(request.key ?? "bucket \(endpoint.bucket)")"
        do {
            let response = try await Self.http.execute(http, timeout: deadline)
            let body = request.method == .HEAD ? Data() : try await Self.collect(response, upTo: bodyLimit)
            return S3Response(status: Int(response.status.code), headers: response.headers, body: body)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPClientError where error == .cancelled {
            throw CancellationError()
        } catch let error as NIOTooManyBytesError {
            throw BunkerError(.storageIO, "The answer to \(what) was larger than the \(bodyLimit) bytes expected.", cause: error)
        } catch {
            // A connection refused, reset or closed early, a timeout, a body cut short: the
            // request may well succeed when tried again.
            throw BunkerError(.storageUnavailable, "The S3 server at \(endpoint.scheme)://\(endpoint.host) did not complete \(what): \(Self.describe(error)).",
                              cause: TransientStorageFailure("\(what): \(error)"))
        }
    }

    /// A network failure as people read it: NIO's own descriptions of a refused connection or
    /// an unknown host wrap the system's message in its own words.
    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("Connection refused") { return "the connection was refused (nothing answers at that address and port)" }
        if text.contains("Connection reset") { return "the connection was reset" }
        if text.lowercased().contains("name resolution") || text.contains("NXDOMAIN") || text.contains("unknownHost") || text.contains("getaddrinfo") {
            return "the host name could not be resolved (\(text))"
        }
        if text.contains("connectTimeout") || text.contains("readTimeout") || text.contains("deadlineExceeded") { return "no answer in time (\(text))" }
        return text
    }

    /// The whole body as one `Data`, allocated once at the length the server announced and
    /// filled straight from the network's buffers (a HEAD's length is the object's, and it has
    /// no body: it is not collected). Collecting into a `ByteBuffer` that grows as it
    /// fills and then copying that out cost two more copies of every byte a restore reads.
    private static func collect(_ response: HTTPClientResponse, upTo limit: Int) async throws -> Data {
        let announced = response.headers.first(name: "content-length").flatMap(Int.init)
        if let announced, announced > limit { throw NIOTooManyBytesError(maxBytes: limit) }
        var body = Data()
        // Not more than a large pack's worth up front: a length is only the server's word.
        body.reserveCapacity(min(announced ?? 0, 128 << 20))
        for try await buffer in response.body {
            guard body.count + buffer.readableBytes <= limit else { throw NIOTooManyBytesError(maxBytes: limit) }
            buffer.withUnsafeReadableBytes { body.append(contentsOf: $0) }
        }
        return body
    }

    /// The error for an answer that is not a success, by status and S3 error code.
    func failure(_ response: S3Response, _ what: String) -> BunkerError {
        let code = response.errorCode
        let message = S3XML.first("Message", in: response.body) ?? ""
        let said = "HTTP \(response.status)\(code.map { " \($0)" } ?? "")\(message.isEmpty ? "" : ": \(message)")"
        let transientCodes: Set = ["SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"]
        if [429, 500, 502, 503, 504].contains(response.status) || code.map { transientCodes.contains($0) } == true {
            return BunkerError(.storageUnavailable, "The S3 server could not serve \(what) for now (\(said)).",
                               cause: TransientStorageFailure("\(what): \(said)", retryAfter: Self.retryAfter(response.header("Retry-After"))))
        }
        switch (response.status, code) {
        case (404, "NoSuchBucket"):
            return BunkerError(.repositoryNotFound, "The bucket \(endpoint.bucket) does not exist at \(endpoint.scheme)://\(endpoint.host). Create it first, or check the endpoint and region (AWS_ENDPOINT_URL, AWS_REGION, or endpoint and region in [repository]).")
        case (404, nil) where !response.body.isEmpty:
            // Every S3 server answers a missing object or bucket with an XML error document
            // (`NoSuchKey`, `NoSuchBucket`); only a HEAD's answer has no body. A 404 with some
            // other body comes from a server that is not S3 (a web server, a wrong port), and
            // taking it for a missing object would say "no repository there" of a wrong address.
            return BunkerError(.storageIO, "The server at \(endpoint.scheme)://\(endpoint.host) answered HTTP 404 without an S3 error document (\(what)): it does not look like an S3 server. Check the endpoint (endpoint in [repository], or AWS_ENDPOINT_URL), its port, and path_style.")
        case (404, _):
            return BunkerError(.objectNotFound, "\(what): the object is missing from the repository.")
        case (403, _), (401, _):
            let hint = code == "SignatureDoesNotMatch"
                ? "The secret access key does not match the key id (credentials from \(credentialsSource)). "
                : code == "InvalidAccessKeyId" ? "The server does not know the access key id (credentials from \(credentialsSource)). " : ""
            return BunkerError(.permissionDenied, "The S3 server refused \(what) (\(said)). \(hint)Check the credentials and the bucket's policy. " + S3Environment.whereCredentialsComeFrom)
        case (416, _):
            return BunkerError(.corruptObject, "\(what): the object is shorter than the range asked for; it is truncated.")
        default:
            return BunkerError(.storageIO, "The S3 server refused \(what) (\(said)).")
        }
    }

    /// `Retry-After` in seconds or as an HTTP date.
    static func retryAfter(_ value: String?) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value), seconds >= 0 { return .milliseconds(Int64(seconds * 1000)) }
        if let date = httpDate(value) { return .milliseconds(Int64(max(0, date.timeIntervalSinceNow) * 1000)) }
        return nil
    }

    /// An RFC 1123 date (`Last-Modified`, `Retry-After`).
    static func httpDate(_ value: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value)
    }
}

/// The few elements Bunker reads from S3's XML answers, found by name. The documents are flat
/// and machine-written, so a scan for `<Name>…</Name>` reads them without an XML library.
enum S3XML {
    /// The text of every `<name>` element, in order, entities decoded.
    static func all(_ name: String, in data: Data) -> [String] {
        all(name, in: String(decoding: data, as: UTF8.self)).map(decode)
    }

    static func first(_ name: String, in data: Data) -> String? {
        all(name, in: data).first
    }

    /// The raw contents (not decoded) of every `<name>` element.
    static func all(_ name: String, in text: String) -> [String] {
        var result: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "<\(name)>") {
            guard let close = rest[open.upperBound...].range(of: "</\(name)>") else { break }
            result.append(String(rest[open.upperBound..<close.lowerBound]))
            rest = rest[close.upperBound...]
        }
        return result
    }

    static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var result = ""
        var rest = text[...]
        while let amp = rest.firstIndex(of: "&") {
            result += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semicolon]
            switch entity {
            case "amp": result += "&"
            case "lt": result += "<"
            case "gt": result += ">"
            case "quot": result += "\""
            case "apos": result += "'"
            default:
                let number = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : entity.hasPrefix("#") ? UInt32(entity.dropFirst()) : nil
                if let number, let scalar = UnicodeScalar(number) { result.unicodeScalars.append(scalar) } else { result += "&\(entity);" }
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return result + rest
    }

    /// Escapes text for an element's content.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
