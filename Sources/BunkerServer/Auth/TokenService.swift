import BunkerCore
import BunkerService
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

    enum CodingKeys: String, CodingKey {
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
    let lifetime: TimeInterval
    let now: @Sendable () -> Date

    /// The secret is the configured file, else `<data_dir>/jwt.key`, generated (32 random bytes,
    /// mode 0600) at first start.
    init(settings: Configuration.ServerSettings, dataDirectory: String, now: @escaping @Sendable () -> Date) async throws {
        let secret = try SecretFile.loadOrCreate(at: settings.jwtSecretFile ?? dataDirectory + "/jwt.key", naming: "the token secret")
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(key: secret), digestAlgorithm: .sha256)
        lifetime = settings.tokenLifetime
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
            expiration: ExpirationClaim(value: expires), username: user.username, generation: user.tokenGeneration)
        return (try await keys.sign(payload), expires)
    }

    /// The user id and token generation of a valid, unexpired token; nil for anything else
    /// (also for a token of a Bunker before generations, which names none).
    func verify(_ token: String) async -> (userID: Int64, generation: Int64)? {
        guard let payload = try? await keys.verify(token, as: AccessToken.self),
              payload.expiration.value > now(), let id = Int64(payload.subject.value) else { return nil }
        return (id, payload.generation)
    }
}
