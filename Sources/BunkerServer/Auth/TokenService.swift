import BunkerCore
import BunkerService
import Crypto
import Foundation
import JWTKit

/// What a Bunker access token says: the user (`sub`), the user's token generation when it was
/// issued (`gen`), when it was issued and when it expires. The role is not trusted from the
/// token: every request reads the user again, so that a deactivated user's tokens stop working
/// at once, and a token of an older generation (before a password change or a deactivation)
/// never works again.
struct AccessToken: JWTPayload {
    var subject: SubjectClaim
    var issuedAt: IssuedAtClaim
    var expiration: ExpirationClaim
    var username: String
    var generation: Int64
    /// Random, so that two tokens issued to one user in the same second differ (a logout revokes
    /// one session, not all); absent from tokens of a Bunker before it, which stay valid.
    var tokenID: IDClaim?

    enum CodingKeys: String, CodingKey {
        case tokenID = "jti"
        case subject = "sub"
        case issuedAt = "iat"
        case expiration = "exp"
        case username = "name"
        case generation = "gen"
    }

    /// Expiry is checked by ``TokenService`` against its injected clock.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Issues and checks HS256 tokens with the server's secret.
struct TokenService: Sendable {
    private let keys: JWTKeyCollection
    /// Keys the console's CSRF tokens (derived from the token secret, so that no second secret
    /// needs keeping and a new secret voids both).
    private let csrfKey: SymmetricKey
    let lifetime: TimeInterval
    let now: @Sendable () -> Date
    /// Where tokens ended by a console logout before their expiry are kept (by SHA-256): the
    /// catalog, so that they stay ended when the server restarts.
    private let catalog: Catalog

    /// The secret is the configured file, else `<data_dir>/jwt.key`, generated (32 random bytes,
    /// mode 0600) at first start.
    init(settings: Configuration.ServerSettings, dataDirectory: String, catalog: Catalog, now: @escaping @Sendable () -> Date) async throws {
        let secret = try SecretFile.loadOrCreate(at: settings.jwtSecretFile ?? dataDirectory + "/jwt.key", naming: "the token secret")
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(key: secret), digestAlgorithm: .sha256)
        csrfKey = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Data("bunker console csrf".utf8), using: secret))
        lifetime = settings.tokenLifetime
        self.catalog = catalog
        self.now = now
    }

    /// A token for `user` and when it expires.
    func issue(for user: UserRecord) async throws -> (token: String, expiresAt: Date) {
        // Whole seconds: JWT clients expect integer NumericDates. Invalidation does not depend on
        // them: it is by generation.
        let issued = Date(timeIntervalSince1970: now().timeIntervalSince1970.rounded(.down))
        let expires = issued.addingTimeInterval(lifetime)
        let payload = AccessToken(
            subject: SubjectClaim(value: String(user.id ?? 0)), issuedAt: IssuedAtClaim(value: issued),
            expiration: ExpirationClaim(value: expires), username: user.username, generation: user.tokenGeneration,
            tokenID: IDClaim(value: UUID().uuidString.lowercased()))
        return (try await keys.sign(payload), expires)
    }

    /// The user id and token generation of a valid, unexpired, unrevoked token; nil for anything
    /// else (also for a token of a Bunker before generations, which names none, and when the
    /// catalog cannot say whether the token was revoked).
    func verify(_ token: String) async -> (userID: Int64, generation: Int64)? {
        guard let payload = try? await keys.verify(token, as: AccessToken.self),
              payload.expiration.value > now(), let id = Int64(payload.subject.value),
              (try? catalog.isRevokedSession(token)) == false else { return nil }
        return (id, payload.generation)
    }

    /// Ends one valid token before its expiry (the console's logout), in the catalog: a copy of
    /// the session cookie taken before the logout no longer works, also after a restart. Only a
    /// valid token is remembered, and only until it would have expired
    /// (``Catalog/revokeSession(_:expiresAt:)``).
    func revoke(_ token: String) async throws {
        guard let payload = try? await keys.verify(token, as: AccessToken.self), payload.expiration.value > now() else { return }
        try catalog.revokeSession(token, expiresAt: payload.expiration.value)
    }

    /// The CSRF token that goes with a session cookie holding `token`: an HMAC of the token, so
    /// the server keeps no state, and a page that cannot read the cookie's token (another site)
    /// cannot make it.
    func csrfToken(for token: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data(token.utf8), using: csrfKey)
        return Data(code).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Whether `sent` is the CSRF token of `token`, compared in constant time.
    func checkCSRF(_ sent: String, for token: String) -> Bool {
        let expected = Array(csrfToken(for: token).utf8), given = Array(sent.utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
