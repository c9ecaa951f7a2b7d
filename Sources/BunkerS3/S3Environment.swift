import BunkerCore
import Foundation

/// An access key pair, and the session token of temporary credentials.
public struct S3Credentials: Sendable, Equatable {
    public let accessKeyID: String
    public let secretAccessKey: String
    public let sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// Credentials, region and endpoint found the way the AWS tools find them:
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, else the profile
/// (`AWS_PROFILE`, default `default`) in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
/// default `~/.aws/credentials`) or the config file (`AWS_CONFIG_FILE`, default `~/.aws/config`);
/// the region from `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile; the endpoint from
/// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or the profile's `endpoint_url`.
public struct S3Environment: Sendable {
    public let credentials: S3Credentials?
    public let region: String?
    public let endpoint: String?
    /// Where the credentials came from, for messages ("AWS_ACCESS_KEY_ID", "profile default in …").
    public let credentialsSource: String

    /// The message of every refusal for want of credentials, naming where they are looked for.
    static let whereCredentialsComeFrom = "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or a profile (AWS_PROFILE) in the shared credentials file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE); a secret never goes in bunker.toml."

    public init(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        let home = value("HOME") ?? NSHomeDirectory()
        let profile = value("AWS_PROFILE") ?? value("AWS_DEFAULT_PROFILE") ?? "default"
        let credentialsFile = value("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials"
        let configFile = value("AWS_CONFIG_FILE") ?? home + "/.aws/config"
        // The config file names profiles `[profile NAME]`, except `[default]`.
        let fromCredentials = Self.section(profile, inFile: credentialsFile)
        let fromConfig = Self.section(profile == "default" ? "default" : "profile " + profile, inFile: configFile)

        if let id = value("AWS_ACCESS_KEY_ID"), let secret = value("AWS_SECRET_ACCESS_KEY") {
            credentials = S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN"))
            credentialsSource = "AWS_ACCESS_KEY_ID"
        } else if let found = Self.credentials(in: fromCredentials) {
            credentials = found
            credentialsSource = "profile \(profile) in \(credentialsFile)"
        } else if let found = Self.credentials(in: fromConfig) {
            credentials = found
            credentialsSource = "profile \(profile) in \(configFile)"
        } else {
            credentials = nil
            credentialsSource = "none"
        }
        region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") ?? fromConfig["region"]
        endpoint = value("AWS_ENDPOINT_URL_S3") ?? value("AWS_ENDPOINT_URL") ?? fromConfig["endpoint_url"]
    }

    private static func credentials(in section: [String: String]) -> S3Credentials? {
        guard let id = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else { return nil }
        return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: section["aws_session_token"])
    }

    /// The keys of one `[section]` of an AWS INI file; empty when the file or section is missing.
    static func section(_ name: String, inFile path: String) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        return section(name, inText: text)
    }

    static func section(_ name: String, inText text: String) -> [String: String] {
        var current: String?
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                continue
            }
            guard current == name, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            values[key] = value
        }
        return values
    }
}
