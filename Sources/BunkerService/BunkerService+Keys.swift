import BunkerCore
import Foundation

extension BunkerService {
    /// Adds a password that opens the repository; audited as `key.add` (the new key's id).
    public func addKey(password: String, by actor: AuditActor = .localUser()) async throws -> String {
        try await audited("key.add", target: nil, by: actor) {
            try await repository.addKey(password: password)
        } describe: { AuditedResult(target: $0) }
    }

    /// Removes a password (never the one in use, nor the last); audited as `key.remove`.
    public func removeKey(_ id: String, by actor: AuditActor = .localUser()) async throws -> String {
        try await audited("key.remove", target: id, by: actor) {
            try await repository.withLock(exclusive: true) { try await repository.removeKey(id) }
        } describe: { AuditedResult(target: $0) }
    }

    /// Changes the password of the key in use (a new key replaces it); audited as `key.passwd`.
    public func changePassword(to password: String, by actor: AuditActor = .localUser()) async throws -> String {
        try await audited("key.passwd", target: repository.keyName, by: actor) {
            try await repository.withLock(exclusive: true) { try await repository.changePassword(to: password) }
        } describe: { AuditedResult(target: $0) }
    }
}
