import BunkerCore
import Foundation

/// What a repository location `s3://BUCKET/PREFIX` names: a bucket, and a key prefix under which
/// the repository's objects live (empty: the bucket's root).
public struct S3Location: Sendable, Equatable {
    public let bucket: String
    /// Without leading or trailing slashes.
    public let prefix: String

    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    public init(parsing location: String) throws {
        guard let separator = location.range(of: "://"), location[..<separator.lowerBound].lowercased() == "s3" else {
            throw BunkerError(.invalidArgument, "\(location) is not an S3 location; write s3://BUCKET/PREFIX.")
        }
        let rest = location[separator.upperBound...]
        let bucket = String(rest.prefix { $0 != "/" })
        let prefix = rest.dropFirst(bucket.count).split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        // The bucket naming rules every S3 implementation accepts (lower case, digits, dot, hyphen).
        guard (3...63).contains(bucket.count),
              bucket.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }) else {
            throw BunkerError(.invalidArgument, "\"\(bucket)\" in \(location) is not a valid bucket name (3 to 63 lower-case letters, digits, dots and hyphens); write s3://BUCKET/PREFIX.")
        }
        guard !prefix.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw BunkerError(.invalidArgument, "The prefix in \(location) may not contain . or .. segments.")
        }
        self.bucket = bucket
        self.prefix = prefix
    }

    public var description: String { "s3://\(bucket)\(prefix.isEmpty ? "" : "/" + prefix)" }
}

/// The settings of an S3 repository that may be written down (in `bunker.toml`'s `[repository]`):
/// never a secret. Unset values come from the AWS environment and files (``S3Environment``).
public struct S3Settings: Sendable, Equatable {
    /// The server, such as `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:8333`.
    public var endpoint: String?
    public var region: String?
    /// Address the bucket in the path (`endpoint/bucket/key`) instead of the host name
    /// (`bucket.endpoint/key`); the default is path style for every endpoint but AWS's own.
    public var pathStyle: Bool?

    public init(endpoint: String? = nil, region: String? = nil, pathStyle: Bool? = nil) {
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle
    }
}

/// Where requests for one bucket go: the URL of an object key, and the `Host` header to sign.
struct S3Endpoint: Sendable, Equatable {
    let scheme: String
    /// Host name, with `:port` when the port is not the scheme's default.
    let host: String
    let region: String
    let bucket: String
    let pathStyle: Bool

    /// The endpoint for `location`: `settings` first, then the environment, then AWS's own
    /// endpoint for the region (default `us-east-1`).
    init(location: S3Location, settings: S3Settings, environment: S3Environment) throws {
        let region = settings.region ?? environment.region ?? "us-east-1"
        let endpoint = settings.endpoint ?? environment.endpoint
        let url = endpoint ?? "https://s3.\(region).amazonaws.com"
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let hostName = components.host, !hostName.isEmpty,
              components.path.isEmpty || components.path == "/" else {
            throw BunkerError(.invalidArgument, "The S3 endpoint \"\(url)\" is not a URL like https://s3.example.com or http://127.0.0.1:8333 (no path).")
        }
        var host = hostName
        if let port = components.port, port != (scheme == "https" ? 443 : 80) { host += ":\(port)" }
        self.scheme = scheme
        self.region = region
        self.bucket = location.bucket
        // Virtual-hosted names cannot carry a bucket with dots over TLS, nor work on an IP address.
        let isAWS = hostName.hasSuffix(".amazonaws.com")
        self.pathStyle = settings.pathStyle ?? (!isAWS || location.bucket.contains("."))
        self.host = pathStyle ? host : "\(location.bucket).\(host)"
    }

    /// The path of `key` (already encoded, as it is signed); `nil` is the bucket itself.
    func path(of key: String?) -> String {
        let encodedKey = key.map { S3Signer.encode($0, keepSlash: true) }
        if pathStyle {
            return "/" + bucket + (encodedKey.map { "/" + $0 } ?? "")
        }
        return "/" + (encodedKey ?? "")
    }
}
