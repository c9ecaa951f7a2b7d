import BunkerCore
import Foundation

/// Makes `s3://BUCKET/PREFIX` a repository location (``StorageLocation``).
public enum S3Backend {
    /// Registers the `s3` scheme: each location opens an ``S3Storage`` with `settings` over the
    /// AWS environment of the moment, behind ``RetryingStorage`` and a
    /// ``ConcurrencyLimitedStorage`` of `concurrency` requests. A later call replaces the settings.
    public static func register(_ settings: S3Settings = S3Settings(), concurrency: Int = ConcurrencyLimitedStorage.defaultLimit) {
        StorageLocation.register(scheme: "s3") { location, _ in
            // A new repository needs no preparation: S3 has no directories, and the bucket must
            // exist (a missing one is reported at the first request).
            try S3Backend.open(location, settings: settings, concurrency: concurrency)
        }
    }

    /// The storage stack for one S3 location.
    public static func open(
        _ location: String, settings: S3Settings = S3Settings(), environment: S3Environment = S3Environment(),
        options: S3Storage.Options = S3Storage.Options(), concurrency: Int = ConcurrencyLimitedStorage.defaultLimit,
        retry: RetryPolicy = RetryPolicy()
    ) throws -> any Storage {
        let storage = try S3Storage(location: S3Location(parsing: location), settings: settings, environment: environment, options: options)
        // Retries outside the limit: a request waiting to retry holds no permit.
        return RetryingStorage(ConcurrencyLimitedStorage(storage, limit: concurrency), policy: retry)
    }
}
