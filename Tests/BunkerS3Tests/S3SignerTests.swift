import BunkerCore
import Foundation
import Testing

@testable import BunkerS3

/// The parts of the S3 driver that need no server: signatures, locations, the AWS environment.
@Suite struct S3SignerTests {
    /// AWS's documented example (GET /test.txt with a Range, in examplebucket, 24 May 2013).
    @Test func signsAWSDocumentedS3Example() {
        let signer = S3Signer(
            credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            region: "us-east-1")
        var headers = [("host", "examplebucket.s3.amazonaws.com"), ("range", "bytes=0-9")]
        signer.sign(method: "GET", path: "/test.txt", query: [], headers: &headers, payloadHash: S3Signer.emptyPayloadHash,
                    date: Date(timeIntervalSince1970: 1_369_353_600))
        let authorization = headers.first { $0.0 == "authorization" }?.1
        #expect(authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func encodesKeysAndQueriesAsSigV4Asks() {
        #expect(S3Signer.encode("a b/c~d+é", keepSlash: true) == "a%20b/c~d%2B%C3%A9")
        #expect(S3Signer.encode("a/b", keepSlash: false) == "a%2Fb")
        #expect(S3Signer.canonicalQuery([("prefix", "r/data/"), ("list-type", "2"), ("uploads", "")]) == "list-type=2&prefix=r%2Fdata%2F&uploads=")
    }

    @Test(arguments: [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://my-bucket/a/b/", "my-bucket", "a/b"),
        ("S3://bucket//x//y", "bucket", "x/y"),
    ])
    func parsesLocations(location: String, bucket: String, prefix: String) throws {
        let parsed = try S3Location(parsing: location)
        #expect(parsed.bucket == bucket)
        #expect(parsed.prefix == prefix)
    }

    @Test(arguments: ["s3://", "s3://B/x", "s3://ab", "s3://bucket/../x", "file://bucket"])
    func refusesBadLocations(location: String) {
        #expect(throws: BunkerError.self) { try S3Location(parsing: location) }
    }

    @Test func endpointsAreAWSByRegionOrAsConfigured() throws {
        let location = try S3Location(parsing: "s3://backups/clinic")
        let aws = try S3Endpoint(location: location, settings: S3Settings(region: "eu-central-1"), environment: S3Environment([:]))
        #expect(aws.host == "backups.s3.eu-central-1.amazonaws.com")
        #expect(aws.path(of: "clinic/config") == "/clinic/config")
        let local = try S3Endpoint(location: location, settings: S3Settings(), environment: S3Environment(["AWS_ENDPOINT_URL": "http://127.0.0.1:8333"]))
        #expect(local.host == "127.0.0.1:8333")
        #expect(local.pathStyle)
        #expect(local.path(of: "clinic/data/ab/ab12") == "/backups/clinic/data/ab/ab12")
        let configured = try S3Endpoint(location: location, settings: S3Settings(endpoint: "https://s3.example.com", pathStyle: false), environment: S3Environment(["AWS_ENDPOINT_URL": "http://127.0.0.1:8333"]))
        #expect(configured.host == "backups.s3.example.com")
        #expect(throws: BunkerError.self) {
            try S3Endpoint(location: location, settings: S3Settings(endpoint: "s3.example.com/path"), environment: S3Environment([:]))
        }
    }

    @Test func findsCredentialsLikeTheAWSTools() throws {
        let dir = NSTemporaryDirectory() + "bunker-aws-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/.aws", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        [default]
        aws_access_key_id = DEFAULTKEY
        aws_secret_access_key = defaultsecret
        # a comment
        [offsite]
        aws_access_key_id = OFFSITEKEY
        aws_secret_access_key = offsitesecret
        aws_session_token = token
        """.write(toFile: dir + "/.aws/credentials", atomically: true, encoding: .utf8)
        try "[profile offsite]\nregion = eu-west-1\nendpoint_url = https://s3.example.com\n".write(toFile: dir + "/.aws/config", atomically: true, encoding: .utf8)

        let fromDefault = S3Environment(["HOME": dir])
        #expect(fromDefault.credentials == S3Credentials(accessKeyID: "DEFAULTKEY", secretAccessKey: "defaultsecret"))
        #expect(fromDefault.region == nil)
        let fromProfile = S3Environment(["HOME": dir, "AWS_PROFILE": "offsite"])
        #expect(fromProfile.credentials == S3Credentials(accessKeyID: "OFFSITEKEY", secretAccessKey: "offsitesecret", sessionToken: "token"))
        #expect(fromProfile.region == "eu-west-1")
        #expect(fromProfile.endpoint == "https://s3.example.com")
        let variables = S3Environment(["HOME": dir, "AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_REGION": "us-west-2"])
        #expect(variables.credentials?.accessKeyID == "ENVKEY")
        #expect(variables.region == "us-west-2")
        let elsewhere = S3Environment(["HOME": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": dir + "/.aws/credentials"])
        #expect(elsewhere.credentials?.accessKeyID == "DEFAULTKEY")
        #expect(S3Environment(["HOME": "/nonexistent"]).credentials == nil)
    }

    @Test func readsRetryAfterAndTheAnswersOfS3() {
        #expect(S3Client.retryAfter("3") == .seconds(3))
        #expect(S3Client.retryAfter("soon") == nil)
        let list = Data("<ListBucketResult><Contents><Key>r/keys/a&amp;b</Key><Size>3</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>".utf8)
        #expect(S3XML.all("Key", in: list) == ["r/keys/a&b"])
        #expect(S3XML.first("IsTruncated", in: list) == "false")
        #expect(S3Storage.name(inKey: "ab/ab12", kind: .pack) == "ab12")
        #expect(S3Storage.name(inKey: "ab12", kind: .pack) == nil)
        #expect(S3Storage.name(inKey: ".bunker-probe", kind: .index) == nil)
        #expect(S3Storage.totalSize(contentRange: "bytes 0-9/4096") == 4096)
    }
}
