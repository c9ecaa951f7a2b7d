import Foundation

/// How to reach the mail server.
public struct SMTPSettings: Sendable, Equatable {
    /// How the connection is protected.
    public enum Security: String, Sendable, CaseIterable {
        /// Plain TCP, then `STARTTLS` (port 587); refused if the server does not offer it.
        case starttls
        /// TLS from the first byte (port 465).
        case tls
        /// No encryption: only for a relay on the same machine; AUTH is refused over it.
        case none
    }

    public var host: String
    public var port: Int
    public var security: Security
    public var username: String?
    public var password: String?
    /// Seconds to wait for the connection and for each reply of the server.
    public var timeout: Double
    /// A PEM file of certificates to trust besides the system's (a private CA, a test server).
    public var trustedCertificatesFile: String?
    /// The name this client gives in EHLO.
    public var clientName: String

    public init(host: String, port: Int? = nil, security: Security = .starttls, username: String? = nil, password: String? = nil,
                timeout: Double = 30, trustedCertificatesFile: String? = nil, clientName: String? = nil) {
        self.host = host
        self.security = security
        self.port = port ?? (security == .tls ? 465 : security == .starttls ? 587 : 25)
        self.username = username
        self.password = password
        self.timeout = timeout
        self.trustedCertificatesFile = trustedCertificatesFile
        self.clientName = clientName ?? (ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName)
    }
}
