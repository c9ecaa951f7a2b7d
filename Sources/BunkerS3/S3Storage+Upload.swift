import BunkerCore
import Crypto
import Foundation
import NIOHTTP1

extension S3Storage {
    /// One PUT: conditional where the server honours it, else after a HEAD that finds the name free.
    func upload(_ handle: ObjectHandle, data: Data, traits: ServerTraits, extraHeaders: [(String, String)] = []) async throws {
        let key = key(of: handle)
        if !traits.conditionalCreate { try await refuseIfPresent(handle) }
        // Some S3-compatible servers take an object lock's headers only beside a Content-MD5,
        // whatever other checksum the upload carries: a locked upload carries both.
        let locked = extraHeaders.contains { $0.0 == Self.lockModeHeader }
        let digests = BodyDigests(data, sha256: Self.contentDigest(of: handle), md5: !traits.checksSHA256 || locked)
        var headers = digests.checksumHeaders(traits.checksum) + [(Self.sha256Metadata, digests.sha256Hex)] + extraHeaders
        if locked && traits.checksum != .md5 { headers += digests.checksumHeaders(.md5) }
        if traits.conditionalCreate { headers.append(("if-none-match", "*")) }
        let response = try await client.send(S3Request(method: .PUT, key: key, headers: headers, body: data, payloadHash: digests.sha256Hex))
        if response.status == 412 { throw alreadyExists(handle) }
        guard response.isSuccess else { throw client.failure(response, "writing \(handle)") }
        // The server checked the body against its SHA-256 before it answered (it refused a wrong
        // one when probed): that answer confirms the upload, as the ETag does otherwise.
        guard !traits.checksSHA256, let md5 = digests.md5 else { return }
        try await confirm(handle, size: data.count, sha256: digests.sha256Hex, etag: response.header("ETag"), expectedETag: md5)
    }

    /// The SHA-256 of an object's bytes when its name already is that: a pack's (the packer
    /// hashed the pack to name it moments before). Hashing a pack again for the request's
    /// signature cost 0.3 CPU-seconds per GiB backed up.
    static func contentDigest(of handle: ObjectHandle) -> [UInt8]? {
        handle.kind == .pack ? ID(hex: handle.name)?.bytes : nil
    }

    /// A multipart upload: created, filled part by part (each with its checksum), completed
    /// (conditionally where the server honours it), and aborted on any failure so that no part
    /// lingers. A HEAD first spares the upload of an object that is already there.
    func uploadInParts(_ handle: ObjectHandle, data: Data, traits: ServerTraits, extraHeaders: [(String, String)] = []) async throws {
        let key = key(of: handle)
        try await refuseIfPresent(handle)
        let locked = extraHeaders.contains { $0.0 == Self.lockModeHeader }
        let sha256 = S3Signer.hex(Self.contentDigest(of: handle) ?? Array(SHA256.hash(data: data)))
        var createHeaders = [(Self.sha256Metadata, sha256)] + extraHeaders
        if traits.checksum == .sha256 { createHeaders.append(("x-amz-checksum-algorithm", "SHA256")) }
        let created = try await client.send(S3Request(method: .POST, key: key, query: [("uploads", "")], headers: createHeaders))
        guard created.isSuccess else { throw client.failure(created, "starting the upload of \(handle)") }
        guard let uploadID = S3XML.first("UploadId", in: created.body), !uploadID.isEmpty else {
            throw BunkerError(.storageIO, "The S3 server started an upload of \(handle) without naming it (no UploadId).")
        }
        do {
            var parts: [(number: Int, etag: String, sha256: String?)] = []
            var partDigests = Data()
            var offset = 0
            while offset < data.count {
                let part = data.subdata(in: offset..<min(offset + options.partSize, data.count))
                let number = parts.count + 1
                let digests = BodyDigests(part, md5: true)
                var partHeaders = digests.checksumHeaders(traits.checksum)
                // The parts of a locked object are uploads under its retention: like a single
                // locked upload, each carries a Content-MD5 beside any other checksum.
                if locked && traits.checksum != .md5 { partHeaders += digests.checksumHeaders(.md5) }
                let response = try await client.send(S3Request(
                    method: .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                    headers: partHeaders, body: part, payloadHash: digests.sha256Hex))
                guard response.isSuccess else { throw client.failure(response, "writing part \(number) of \(handle)") }
                guard let etag = response.header("ETag") else {
                    throw BunkerError(.storageIO, "The S3 server took part \(number) of \(handle) without an ETag.")
                }
                parts.append((number: number, etag: etag, sha256: traits.checksum == .sha256 ? digests.sha256Base64 : nil))
                partDigests.append(contentsOf: digests.md5 ?? [])
                offset += part.count
            }
            let list = parts.map { part in
                "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(S3XML.escape(part.etag))</ETag>\(part.sha256.map { "<ChecksumSHA256>\($0)</ChecksumSHA256>" } ?? "")</Part>"
            }.joined()
            let body = Data("<CompleteMultipartUpload>\(list)</CompleteMultipartUpload>".utf8)
            var headers = [("content-md5", Data(Insecure.MD5.hash(data: body)).base64EncodedString())]
            if traits.conditionalCreate { headers.append(("if-none-match", "*")) }
            let completed = try await client.send(S3Request(method: .POST, key: key, query: [("uploadId", uploadID)], headers: headers, body: body))
            if completed.status == 412 { throw alreadyExists(handle) }
            // CompleteMultipartUpload can fail after a 200, with an error document as the body.
            guard completed.isSuccess, completed.errorCode == nil else {
                throw client.failure(completed.isSuccess ? S3Response(status: 500, headers: completed.headers, body: completed.body) : completed,
                                     "completing the upload of \(handle)")
            }
            // A multipart ETag is the MD5 of the parts' MD5s, then "-" and the number of parts.
            try await confirm(handle, size: data.count, sha256: sha256, etag: S3XML.first("ETag", in: completed.body) ?? completed.header("ETag"),
                              expectedETag: Insecure.MD5.hash(data: partDigests).map { $0 }, parts: parts.count)
        } catch {
            _ = try? await client.send(S3Request(method: .DELETE, key: key, query: [("uploadId", uploadID)]))
            throw error
        }
    }

    /// Checks that the server stored exactly the `size` bytes whose SHA-256 is `sha256`: by the
    /// ETag when it is the expected MD5, else by a HEAD (size and the recorded SHA-256). An object
    /// found wrong is deleted (this upload created it) and the failure is transient, so that a
    /// retry uploads it again.
    private func confirm(_ handle: ObjectHandle, size expectedSize: Int, sha256: String, etag: String?, expectedETag: [UInt8], parts: Int? = nil) async throws {
        let expected = S3Signer.hex(expectedETag) + (parts.map { "-\($0)" } ?? "")
        if let etag, etag.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).lowercased() == expected { return }
        let response = try await client.send(S3Request(method: .HEAD, key: key(of: handle)))
        guard response.isSuccess else { throw client.failure(response, "confirming \(handle)") }
        let size = response.header("Content-Length").flatMap(Int.init)
        let recorded = response.header(Self.sha256Metadata)?.lowercased()
        if size == expectedSize && (recorded == nil || recorded == sha256) { return }
        _ = try? await client.send(S3Request(method: .DELETE, key: key(of: handle)))
        throw BunkerError(.storageUnavailable, "The S3 server stored \(handle) with \(size.map(String.init) ?? "an unknown number of") bytes instead of \(expectedSize); the upload was removed.",
                          cause: TransientStorageFailure("unconfirmed upload of \(handle)"))
    }

    private func refuseIfPresent(_ handle: ObjectHandle) async throws {
        if try await exists(handle) { throw alreadyExists(handle) }
    }

    private func alreadyExists(_ handle: ObjectHandle) -> BunkerError {
        BunkerError(.objectExists, "\(handle) already exists in the repository; objects are never overwritten.")
    }

    static func checksumHeaders(_ checksum: S3Checksum, _ data: Data) -> [(String, String)] {
        BodyDigests(data, md5: checksum == .md5).checksumHeaders(checksum)
    }

    /// Finds out, with temporary objects under the prefix (removed again), which checksum the
    /// server verifies (one it accepts when right and refuses when wrong) and whether it honours
    /// `If-None-Match: *`.
    func probeServer() async throws -> ServerTraits {
        var written: [String] = []
        do {
            let traits = try await probeServer(writing: &written)
            await removeProbes(written)
            return traits
        } catch {
            await removeProbes(written)
            throw error
        }
    }

    /// A leftover probe is a few bytes under a name no listing of the repository returns, so
    /// failures here are not worth reporting.
    private func removeProbes(_ keys: [String]) async {
        for key in keys { _ = try? await client.send(S3Request(method: .DELETE, key: key)) }
    }

    private func probeServer(writing written: inout [String]) async throws -> ServerTraits {
        let base = (location.prefix.isEmpty ? "" : location.prefix + "/") + ".bunker-probe-" + UUID().uuidString.lowercased()
        let body = Data("Bunker checks what this S3 server supports.".utf8)
        var chosen: (S3Checksum, Bool)?
        var lastRefusal: BunkerError?
        for checksum in options.checksums {
            let right = try await client.send(S3Request(method: .PUT, key: base + "-" + checksum.rawValue.lowercased(), headers: Self.checksumHeaders(checksum, body), body: body))
            guard right.isSuccess else {
                let failure = client.failure(right, "probing the bucket with \(checksum.rawValue)")
                if failure.code == .storageIO {
                    lastRefusal = failure
                    continue
                }
                throw failure
            }
            written.append(base + "-" + checksum.rawValue.lowercased())
            let wrong = try await client.send(S3Request(method: .PUT, key: base + "-wrong", headers: Self.checksumHeaders(checksum, Data("other bytes".utf8)), body: body))
            if wrong.isSuccess {
                written.append(base + "-wrong")
                if chosen == nil { chosen = (checksum, false) }
                continue
            }
            guard wrong.status == 400 else { throw client.failure(wrong, "probing the bucket with a wrong \(checksum.rawValue)") }
            chosen = (checksum, true)
            break
        }
        guard let chosen else {
            throw lastRefusal ?? BunkerError(.storageIO, "The S3 server accepts no upload with a content checksum (tried \(options.checksums.map(\.rawValue).joined(separator: ", "))).")
        }
        let (checksum, verified) = chosen
        let key = written.first { $0.hasSuffix(checksum.rawValue.lowercased()) }!
        let again = try await client.send(S3Request(method: .PUT, key: key, headers: Self.checksumHeaders(checksum, body) + [("if-none-match", "*")], body: body))
        if !again.isSuccess && again.status != 412 && again.status != 400 && again.status != 501 {
            throw client.failure(again, "probing the bucket for conditional writes")
        }
        return ServerTraits(conditionalCreate: again.status == 412, checksum: checksum, checksumVerified: verified)
    }
}

/// The digests of one upload's body, each worked out once and only when needed. The SHA-256
/// signs the request (`x-amz-content-sha256`), is recorded in the object's metadata and is the
/// flexible checksum; the MD5 is `Content-MD5` and what a single upload's ETag should be. Hashing
/// a 16 MiB pack costs about as much CPU as sealing it (MD5 twice as much as SHA-256 here), and
/// each pass was once made two or three times.
struct BodyDigests {
    let sha256: [UInt8]
    /// Nil when neither the checksum header nor the upload's confirmation needs it.
    let md5: [UInt8]?

    /// The digests of `body`, taking its SHA-256 as `known` when given.
    init(_ body: Data, sha256 known: [UInt8]? = nil, md5 needed: Bool) {
        sha256 = known ?? Array(SHA256.hash(data: body))
        md5 = needed ? Array(Insecure.MD5.hash(data: body)) : nil
    }

    var sha256Hex: String { S3Signer.hex(sha256) }
    var sha256Base64: String { Data(sha256).base64EncodedString() }

    /// The header that carries `checksum` for the server to check the body against.
    func checksumHeaders(_ checksum: S3Checksum) -> [(String, String)] {
        switch checksum {
        case .md5:
            guard let md5 else { preconditionFailure("Content-MD5 asked of digests made without the MD5") }
            return [("content-md5", Data(md5).base64EncodedString())]
        case .sha256:
            return [("x-amz-checksum-sha256", sha256Base64)]
        }
    }
}
