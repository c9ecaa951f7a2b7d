import BunkerCore
import Foundation

extension S3Storage {
    /// Creates the location's bucket; with `objectLock`, with object lock enabled (which turns
    /// versioning on), the only way a bucket can hold locked objects: S3 cannot enable it later
    /// on most servers. Used by the test fixtures, and ready for an `init --create-bucket`.
    public func createBucket(objectLock: Bool) async throws {
        let headers = objectLock ? [("x-amz-bucket-object-lock-enabled", "true")] : []
        let response = try await client.send(S3Request(method: .PUT, key: nil, headers: headers))
        guard response.isSuccess else { throw client.failure(response, "creating bucket \(location.bucket)") }
    }
}
