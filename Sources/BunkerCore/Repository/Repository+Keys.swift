import Foundation

/// A key file as listed for people.
public struct KeyListing: Sendable, Codable {
    public var id: String
    public var created: Date
    public var hostname: String
    public var username: String
    public var current: Bool
}

extension Repository {
    /// Every key file, oldest first; `current` marks the one that opened this repository.
    public func listKeys() async throws -> [KeyListing] {
        var result: [KeyListing] = []
        for info in try await storage.list(.key) {
            let data = try await storage.load(info.handle)
            guard let file = try? JSONCoding.decoder.decode(KeyFile.self, from: data) else { continue }
            result.append(KeyListing(id: info.handle.name, created: file.created, hostname: file.hostname,
                                     username: file.username, current: info.handle.name == keyName))
        }
        return result.sorted { ($0.created, $0.id) < ($1.created, $1.id) }
    }

    /// Adds a key file that unlocks the same master key with another password.
    public func addKey(password: String, kdf: KDFParameters = .standard) async throws -> String {
        guard !password.isEmpty else {
            throw BunkerError(.invalidArgument, "An empty password is not allowed.")
        }
        let data = try KeyFile.make(master: key, password: password, parameters: kdf, now: now()).encoded()
        let name = ID.sha256(of: data).hex
        try await storage.save(ObjectHandle(.key, name), data: data)
        return name
    }

    /// Removes a key file, given its id or a unique prefix; refuses the key in use and the last key.
    public func removeKey(_ reference: String) async throws -> String {
        let keys = try await listKeys()
        let matches = keys.filter { $0.id.hasPrefix(reference.lowercased()) }
        guard matches.count == 1, reference.count >= 4 else {
            throw BunkerError(matches.isEmpty ? .keyNotFound : .invalidArgument,
                              matches.isEmpty ? "No key matches \"\(reference)\"; `bunker key list` shows them." : "\"\(reference)\" matches several keys; give more digits.")
        }
        let target = matches[0]
        guard !target.current else {
            throw BunkerError(.invalidArgument, "Key \(target.id.prefix(8)) is the one in use; open the repository with another password to remove it.")
        }
        guard keys.count > 1 else {
            throw BunkerError(.invalidArgument, "Refusing to remove the last key: the repository would be unreadable forever.")
        }
        try await refuseIfLocked(key: target.id)
        try await storage.remove(ObjectHandle(.key, target.id))
        return target.id
    }

    /// Replaces the current key's password: adds a new key, then removes the old one.
    /// Under an object lock whose retention on the key file has not ended, refuses before adding
    /// anything (the old password would go on opening the repository).
    public func changePassword(to password: String, kdf: KDFParameters = .standard) async throws -> String {
        try await refuseIfLocked(key: keyName)
        let name = try await addKey(password: password, kdf: kdf)
        try await storage.remove(ObjectHandle(.key, keyName))
        return name
    }

    /// Refuses to remove key file `name` while the repository's object lock keeps it. A key file
    /// is retained like every object that holds data, since without one the data is lost.
    private func refuseIfLocked(key name: String) async throws {
        guard let lock = storage.capability(ObjectLockStorage.self),
              let until = try await lock.lockedUntil(ObjectHandle(.key, name)) else { return }
        throw BunkerError(
            .objectLocked,
            "Key \(name.prefix(8)) is kept by the repository's object lock until \(until.formatted(.iso8601)): nobody can delete it before then, so its password opens the repository until that day. "
                + "Add a new password now with `bunker key add`, and remove this key after that date with `bunker key remove \(name.prefix(8))`. "
                + "If the password has leaked, make a new repository with `bunker init` (without --copy-params-from, so it has a master key of its own) and `bunker copy` the snapshots into it.")
    }
}
