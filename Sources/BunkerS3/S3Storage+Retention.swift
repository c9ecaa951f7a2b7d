import BunkerCore
import Crypto
import Foundation

/// S3 object lock: retained uploads, retention read and extended, versions listed and deleted,
/// and the probe that checks the bucket really refuses to delete a retained version.
///
/// Object lock only exists on a bucket created with it enabled, which makes the bucket
/// versioned: a plain DELETE there adds a delete marker and keeps the bytes, so every deletion
/// names the version it removes.
extension S3Storage: RetentionStorage {
    static let lockModeHeader = "x-amz-object-lock-mode"
    static let retainUntilHeader = "x-amz-object-lock-retain-until-date"

    public func save(_ handle: ObjectHandle, data: Data, retention: ObjectRetention) async throws {
        do {
            try await save(handle, data: data, extraHeaders: Self.retentionHeaders(retention))
        } catch let error as BunkerError where error.code == .storageIO {
            throw BunkerError(.storageIO, "\(error.message) The bucket must be created with object lock enabled (which also turns on versioning) for an --object-lock repository; create a new bucket that way, or use a repository without object lock.", cause: error)
        }
    }

    public func retention(of handle: ObjectHandle) async throws -> ObjectRetention? {
        try validate(handle)
        let response = try await client.send(S3Request(method: .HEAD, key: key(of: handle)))
        guard response.isSuccess else { throw client.failure(response, "checking the retention of \(handle)") }
        return Self.retention(in: response)
    }

    public func extendRetention(of handle: ObjectHandle, to retention: ObjectRetention) async throws {
        try validate(handle)
        let body = Data("<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>\(retention.mode.rawValue)</Mode><RetainUntilDate>\(Self.lockDate(retention.until))</RetainUntilDate></Retention>".utf8)
        let response = try await client.send(S3Request(
            method: .PUT, key: key(of: handle), query: [("retention", "")],
            headers: [("content-md5", Data(Insecure.MD5.hash(data: body)).base64EncodedString())], body: body))
        guard response.isSuccess else { throw client.failure(response, "extending the retention of \(handle)") }
    }

    public func versions(of handle: ObjectHandle) async throws -> [ObjectVersion] {
        try validate(handle)
        return try await versions(ofKey: key(of: handle))
    }

    public func removeAllVersions(of handle: ObjectHandle) async throws {
        try validate(handle)
        let key = key(of: handle)
        for version in try await versions(ofKey: key) {
            let response = try await client.send(S3Request(method: .DELETE, key: key, query: [("versionId", version.id)]))
            guard response.isSuccess || response.status == 404 else {
                throw client.failure(response, "deleting version \(version.id) of \(handle)")
            }
        }
        // Some servers answer a DELETE they did not carry out with success.
        if !(try await versions(ofKey: key)).isEmpty {
            throw BunkerError(.storageIO, "The S3 server accepted the deletion of every version of \(handle), but versions are still there.")
        }
    }

    public func probeImmutability(mode: ObjectLockMode) async throws -> ImmutabilityProbe {
        let traits = try await serverTraits()
        let key = (location.prefix.isEmpty ? "" : location.prefix + "/") + ".bunker-lock-probe-" + UUID().uuidString.lowercased()
        let body = Data("Bunker checks that this bucket refuses to delete an object under retention.".utf8)
        // A day: long enough for any clock skew, short enough that the probe's few bytes go soon.
        let retention = ObjectRetention(mode: mode, until: Date().addingTimeInterval(86400))
        let put = try await client.send(S3Request(
            method: .PUT, key: key, headers: Self.checksumHeaders(traits.checksum, body) + Self.retentionHeaders(retention), body: body))
        guard put.isSuccess else {
            let failure = client.failure(put, "writing a probe object under retention")
            throw BunkerError(failure.code, "\(failure.message) Object lock needs a bucket created with object lock enabled; create one that way (for example `aws s3api create-bucket --object-lock-enabled-for-bucket`), or drop --object-lock.", cause: failure)
        }
        var written = put.header("x-amz-version-id")
        if written == nil { written = try await versions(ofKey: key).first?.id }
        guard let version = written, version != "null" else {
            _ = try? await client.send(S3Request(method: .DELETE, key: key))
            return ImmutabilityProbe(enforced: false, detail: "The bucket is not versioned, so it cannot keep an object lock: a deletion removes the data.")
        }
        let delete = try await client.send(S3Request(method: .DELETE, key: key, query: [("versionId", version)]))
        if delete.isSuccess {
            return ImmutabilityProbe(enforced: false, detail: "The bucket accepted an object under \(mode.rawValue) retention, then deleted that version when asked: it does not enforce object lock.")
        }
        if delete.status == 403 {
            return ImmutabilityProbe(enforced: true, detail: "The bucket refused to delete a version under \(mode.rawValue) retention (\(delete.errorCode ?? "HTTP 403")).")
        }
        throw client.failure(delete, "deleting the version of the probe object under retention")
    }

    // MARK: - Helpers

    private func versions(ofKey key: String) async throws -> [ObjectVersion] {
        var result: [ObjectVersion] = []
        var keyMarker: String?
        var versionMarker: String?
        repeat {
            var query = [("versions", ""), ("prefix", key)]
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let versionMarker { query.append(("version-id-marker", versionMarker)) }
            let response = try await client.send(S3Request(method: .GET, key: nil, query: query), expecting: 16 << 20)
            guard response.isSuccess else { throw client.failure(response, "listing the versions of \(key)") }
            let text = String(decoding: response.body, as: UTF8.self)
            for (element, marker) in [("Version", false), ("DeleteMarker", true)] {
                for entry in S3XML.all(element, in: text) {
                    guard S3XML.all("Key", in: entry).first.map(S3XML.decode) == key,
                          let id = S3XML.all("VersionId", in: entry).first.map(S3XML.decode) else { continue }
                    result.append(ObjectVersion(id: id, isDeleteMarker: marker))
                }
            }
            let truncated = S3XML.first("IsTruncated", in: response.body) == "true"
            keyMarker = truncated ? S3XML.first("NextKeyMarker", in: response.body) : nil
            versionMarker = truncated ? S3XML.first("NextVersionIdMarker", in: response.body) : nil
            if truncated && keyMarker == nil {
                throw BunkerError(.storageIO, "The S3 server's listing of the versions of \(key) is truncated without a marker to go on from.")
            }
        } while keyMarker != nil
        return result
    }

    static func retentionHeaders(_ retention: ObjectRetention) -> [(String, String)] {
        [(lockModeHeader, retention.mode.rawValue), (retainUntilHeader, lockDate(retention.until))]
    }

    static func retention(in response: S3Response) -> ObjectRetention? {
        guard let modeText = response.header(lockModeHeader), let mode = ObjectLockMode(rawValue: modeText.uppercased()),
              let until = response.header(retainUntilHeader).flatMap(isoDate) else { return nil }
        return ObjectRetention(mode: mode, until: until)
    }

    /// ISO 8601 in UTC, whole seconds, as S3 writes retain-until dates. S3 dates have no
    /// fraction: the second is added before the fraction is dropped, so that rounding never
    /// shortens a retention.
    static func lockDate(_ date: Date) -> String {
        Timestamp.formatSeconds(date.addingTimeInterval(1))
    }
}
