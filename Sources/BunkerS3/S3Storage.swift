import BunkerCore
import Crypto
import Foundation
import NIOHTTP1
import Synchronization

/// The content checksums an upload can carry, which the server checks against the body.
public enum S3Checksum: String, Sendable, CaseIterable {
    /// `Content-MD5`: the classic, which also makes a single upload's ETag.
    case md5 = "Content-MD5"
    /// `x-amz-checksum-sha256`: the newer flexible checksum.
    case sha256 = "x-amz-checksum-sha256"
}

/// A repository in an S3-compatible bucket (`s3://BUCKET/PREFIX`), over AsyncHTTPClient with
/// Signature Version 4.
///
/// Objects keep the local layout under the prefix (`config`, `keys/NAME`, `data/XX/NAME`, …), so
/// a repository copied between a directory and a bucket by any tool stays readable.
///
/// How it gives the ``Storage`` guarantees on a store that has no rename:
/// - **Never overwritten**: a single PUT asks for a conditional create (`If-None-Match: *`, a
///   412 means the name is taken). Servers that ignore or refuse the condition are found once,
///   by probing a temporary object before the first write; there a HEAD checks the name first.
/// - **Whole or nothing**: S3 makes an object visible only once its upload completed. Every
///   upload carries a checksum the server verifies (`x-amz-checksum-sha256` or `Content-MD5`,
///   the first the probe found the server checks) and its SHA-256 in the object's metadata
///   (`x-amz-meta-bunker-sha256`). It is confirmed by the server's answer when the server checks
///   the SHA-256 (a single upload), else by the ETag, else by a HEAD. A pack's name is its
///   SHA-256, which is not worked out again (a server that checks the SHA-256 refuses a pack
///   named otherwise).
/// - Objects above ``Options/multipartThreshold`` go up as a multipart upload, part by part,
///   aborted on any failure.
/// - **Reads** are checked too: a range must come back whole, and a whole object must match the
///   SHA-256 in its metadata (a body cut short is a transient failure, read again).
/// - A DELETE of a missing key succeeds in S3, so `remove` checks the object exists first and is
///   gone afterwards.
///
/// Every failure that may pass with time is ``BunkerError/Code/storageUnavailable`` with a
/// ``TransientStorageFailure`` (honouring `Retry-After`); ``S3Backend`` wraps the storage in
/// ``RetryingStorage`` and ``ConcurrencyLimitedStorage`` for that.
public struct S3Storage: Storage {
    /// Tuning that tests lower (a multipart threshold of a few MiB, listing pages of 2).
    public struct Options: Sendable {
        /// Objects larger than this are uploaded in parts.
        public var multipartThreshold = 64 << 20
        /// The size of each part but the last (S3's minimum is 5 MiB).
        public var partSize = 16 << 20
        /// Keys asked for per ListObjectsV2 page.
        public var listPageSize = 1000
        /// The checksums to try, in order of preference. SHA-256 first: the request's signature
        /// needs it anyway, and it spares an MD5 of every body (0.75 CPU-seconds per GiB here).
        public var checksums: [S3Checksum] = [.sha256, .md5]
        /// How long one request may take (plus a second per MiB it carries).
        public var timeout: Duration = .seconds(300)

        public init() {}
    }

    /// What the probe before the first write found the server does.
    public struct ServerTraits: Sendable, Equatable {
        /// Whether `If-None-Match: *` refuses to replace an object.
        public var conditionalCreate: Bool
        /// The checksum every upload carries.
        public var checksum: S3Checksum
        /// Whether the server was seen to refuse a wrong checksum (else uploads are still
        /// confirmed by ETag or HEAD).
        public var checksumVerified: Bool

        /// Whether each upload's SHA-256 is checked by the server: then its answer confirms the
        /// upload, and no MD5 of the body is needed.
        var checksSHA256: Bool { checksum == .sha256 && checksumVerified }
    }

    public let location: S3Location
    public let options: Options
    let client: S3Client
    private let probe: ProbeState

    /// The metadata header holding the SHA-256 of an object's bytes.
    static let sha256Metadata = "x-amz-meta-bunker-sha256"

    /// A storage for `location`; `settings` over the AWS environment (credentials, region,
    /// endpoint). Nothing is sent until the first request.
    public init(location: S3Location, settings: S3Settings = S3Settings(), environment: S3Environment = S3Environment(), options: Options = Options()) throws {
        let endpoint = try S3Endpoint(location: location, settings: settings, environment: environment)
        self.location = location
        self.options = options
        self.client = S3Client(
            endpoint: endpoint, signer: environment.credentials.map { S3Signer(credentials: $0, region: endpoint.region) },
            credentialsSource: environment.credentialsSource, timeout: options.timeout)
        self.probe = ProbeState()
    }

    // MARK: - Keys

    /// The key prefix of every object of `kind`, ending in `/` (for `config`, the key itself).
    func keyPrefix(_ kind: ObjectKind) -> String {
        let root = location.prefix.isEmpty ? "" : location.prefix + "/"
        return kind == .config ? root + "config" : root + kind.rawValue + "/"
    }

    func key(of handle: ObjectHandle) -> String {
        switch handle.kind {
        case .config: return keyPrefix(.config)
        case .pack: return keyPrefix(.pack) + String(handle.name.prefix(2)) + "/" + handle.name
        default: return keyPrefix(handle.kind) + handle.name
        }
    }

    func validate(_ handle: ObjectHandle) throws {
        let name = handle.name
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix("."), handle.kind != .pack || name.utf8.count >= 2 else {
            throw BunkerError(.invalidArgument, "Invalid object name \"\(name)\".")
        }
    }

    // MARK: - Storage

    public func save(_ handle: ObjectHandle, data: Data) async throws {
        try await save(handle, data: data, extraHeaders: [])
    }

    /// Uploads with `extraHeaders` (an object lock's) on the PUT or the multipart create.
    func save(_ handle: ObjectHandle, data: Data, extraHeaders: [(String, String)]) async throws {
        try validate(handle)
        let traits = try await serverTraits()
        if data.count > options.multipartThreshold {
            try await uploadInParts(handle, data: data, traits: traits, extraHeaders: extraHeaders)
        } else {
            try await upload(handle, data: data, traits: traits, extraHeaders: extraHeaders)
        }
    }

    public func load(_ handle: ObjectHandle, range: Range<Int>?) async throws -> Data {
        try validate(handle)
        guard let range else { return try await loadWhole(handle) }
        if range.isEmpty {
            let size = try await stat(handle).size
            guard range.lowerBound <= size else { throw shorter(handle, range, size) }
            return Data()
        }
        let response = try await client.send(
            S3Request(method: .GET, key: key(of: handle), headers: [("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")]),
            expecting: range.count)
        if response.status == 416 { throw shorter(handle, range, nil) }
        guard response.isSuccess else { throw client.failure(response, "reading \(handle)") }
        if response.status == 200 {
            // A server that ignores Range sends the whole object.
            guard response.body.count >= range.upperBound else { throw shorter(handle, range, response.body.count) }
            return response.body.subdata(in: range)
        }
        guard response.body.count != range.count else { return response.body }
        // Content-Range says how long the object is: shorter than the range is a truncated
        // object; otherwise the transfer was cut, and a new one may succeed.
        if let total = Self.totalSize(contentRange: response.header("Content-Range")), total < range.upperBound {
            throw shorter(handle, range, total)
        }
        throw BunkerError(.storageUnavailable, "Reading \(handle) returned \(response.body.count) of \(range.count) bytes.",
                          cause: TransientStorageFailure("short read of \(handle)"))
    }

    public func stat(_ handle: ObjectHandle) async throws -> ObjectInfo {
        try validate(handle)
        let response = try await client.send(S3Request(method: .HEAD, key: key(of: handle)))
        guard response.isSuccess else { throw client.failure(response, "checking \(handle)") }
        guard let size = response.header("Content-Length").flatMap(Int.init) else {
            throw BunkerError(.storageIO, "The S3 server answered HEAD \(handle) without a Content-Length.")
        }
        return ObjectInfo(handle: handle, size: size, modified: response.header("Last-Modified").flatMap(S3Client.httpDate))
    }

    public func list(_ kind: ObjectKind) async throws -> [ObjectInfo] {
        if kind == .config {
            if let info = try? await stat(.config) { return [info] }
            return []
        }
        return try await listing(kind, namePrefix: "")
    }

    /// Asks the server for the matching keys only (`prefix=`); packs, spread over subfolders by
    /// their first two hex digits, are filtered after a whole listing.
    public func list(_ kind: ObjectKind, prefix: String) async throws -> [ObjectInfo] {
        if kind == .config || kind == .pack {
            return try await list(kind).filter { $0.handle.name.hasPrefix(prefix) }
        }
        return try await listing(kind, namePrefix: prefix)
    }

    private func listing(_ kind: ObjectKind, namePrefix: String) async throws -> [ObjectInfo] {
        let prefix = keyPrefix(kind)
        let asked = prefix + namePrefix
        var result: [ObjectInfo] = []
        var token: String?
        var seenTokens: Set<String> = []
        repeat {
            var query = [("list-type", "2"), ("prefix", asked), ("max-keys", String(options.listPageSize))]
            if let token { query.append(("continuation-token", token)) }
            let response = try await client.send(S3Request(method: .GET, key: nil, query: query), expecting: 64 << 20)
            guard response.isSuccess else { throw client.failure(response, "listing \(kind.rawValue)") }
            for entry in S3XML.all("Contents", in: String(decoding: response.body, as: UTF8.self)) {
                guard let key = S3XML.all("Key", in: entry).first.map(S3XML.decode), key.hasPrefix(prefix),
                      let size = S3XML.all("Size", in: entry).first.flatMap({ Int($0) }),
                      let name = Self.name(inKey: String(key.dropFirst(prefix.count)), kind: kind) else { continue }
                let modified = S3XML.all("LastModified", in: entry).first.flatMap(Self.isoDate)
                result.append(ObjectInfo(handle: ObjectHandle(kind, name), size: size, modified: modified))
            }
            let truncated = S3XML.first("IsTruncated", in: response.body) == "true"
            token = truncated ? S3XML.first("NextContinuationToken", in: response.body) : nil
            // A listing that says there is more but not where, or goes round in circles, is
            // not one to trust: prune must never act on a partial listing.
            if truncated && (token == nil || !seenTokens.insert(token!).inserted) {
                throw BunkerError(.storageIO, "The S3 server's listing of \(kind.rawValue) is truncated without a usable continuation token; the listing cannot be completed.")
            }
        } while token != nil
        return result
    }

    public func remove(_ handle: ObjectHandle) async throws {
        try validate(handle)
        _ = try await stat(handle)
        let response = try await client.send(S3Request(method: .DELETE, key: key(of: handle)))
        guard response.isSuccess || response.status == 404 else { throw client.failure(response, "deleting \(handle)") }
        // Some servers answer a DELETE they did not carry out with success.
        if try await exists(handle) {
            throw BunkerError(.storageIO, "The S3 server accepted the deletion of \(handle), but the object is still there.")
        }
    }

    // MARK: - Reading

    private func loadWhole(_ handle: ObjectHandle) async throws -> Data {
        var attempt = 0
        while true {
            attempt += 1
            let response = try await client.send(S3Request(method: .GET, key: key(of: handle)), expecting: Int.max)
            guard response.isSuccess else { throw client.failure(response, "reading \(handle)") }
            if let expected = response.header("Content-Length").flatMap(Int.init), expected != response.body.count {
                throw BunkerError(.storageUnavailable, "Reading \(handle) returned \(response.body.count) of \(expected) bytes.",
                                  cause: TransientStorageFailure("short read of \(handle)"))
            }
            guard let recorded = response.header(Self.sha256Metadata)?.lowercased(),
                  recorded != S3Signer.hex(SHA256.hash(data: response.body)) else { return response.body }
            // Once may be the transfer; twice in a row is the stored object.
            if attempt == 1 { continue }
            throw BunkerError(.corruptObject, "\(handle) does not match the SHA-256 recorded when it was stored (read twice); the stored object is damaged.")
        }
    }

    private func shorter(_ handle: ObjectHandle, _ range: Range<Int>, _ size: Int?) -> BunkerError {
        BunkerError(.corruptObject, "\(handle) is shorter than expected (wanted bytes \(range.lowerBound)..<\(range.upperBound)\(size.map { ", object ends at \($0)" } ?? "")); the object is truncated.")
    }

    /// The total in `Content-Range: bytes A-B/TOTAL`.
    static func totalSize(contentRange: String?) -> Int? {
        guard let contentRange, let slash = contentRange.lastIndex(of: "/") else { return nil }
        return Int(contentRange[contentRange.index(after: slash)...])
    }

    /// The object name in a key below a kind's prefix (`XX/NAME` for packs); nil for keys that
    /// are not the kind's objects (probes, deeper paths, names another tool left).
    static func name(inKey rest: String, kind: ObjectKind) -> String? {
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        if kind == .pack {
            guard parts.count == 2, parts[0].count == 2, parts[1].hasPrefix(parts[0]), !parts[1].hasPrefix(".") else { return nil }
            return String(parts[1])
        }
        guard parts.count == 1, !parts[0].isEmpty, !parts[0].hasPrefix(".") else { return nil }
        return String(parts[0])
    }

    /// `LastModified` and retain-until dates: RFC 3339, with or without a fraction.
    static func isoDate(_ text: String) -> Date? {
        Timestamp.parse(text)
    }

    // MARK: - The probe

    /// What the server does with conditional creates and checksums, probed once (before the
    /// first write) and remembered.
    public func serverTraits() async throws -> ServerTraits {
        if let known = probe.traits.withLock({ $0 }) { return known }
        return try await probe.once.withPermit {
            if let known = probe.traits.withLock({ $0 }) { return known }
            let found = try await probeServer()
            probe.traits.withLock { $0 = found }
            return found
        }
    }
}

/// The probe's result, shared by copies of one storage.
final class ProbeState: Sendable {
    let traits = Mutex<S3Storage.ServerTraits?>(nil)
    /// One probe at a time: concurrent first writes wait for it rather than probe again.
    let once = AsyncLimiter(limit: 1)
}
