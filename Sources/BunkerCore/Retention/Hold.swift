import Foundation

/// A hold (legal hold) on a snapshot: retention keeps the snapshot until the hold is removed.
///
/// Stored sealed as JSON under `holds/<sha256>`, one object per hold, so that holds travel with
/// the repository (a copy, a restored catalog) and no lost database can release them. A snapshot
/// may have several holds; it is protected while any of them exists.
public struct Hold: Codable, Sendable, Equatable {
    /// The snapshot held.
    public var snapshot: ID
    /// Why, in the words of whoever placed it (a case number, an auditor's request).
    public var reason: String
    public var time: Date
    public var username: String
    public var hostname: String

    public init(snapshot: ID, reason: String, time: Date, username: String, hostname: String) {
        self.snapshot = snapshot
        self.reason = reason
        self.time = time
        self.username = username
        self.hostname = hostname
    }
}

/// A hold and the object that stores it.
public struct HoldRecord: Sendable {
    /// The hold object's name (`holds/<id>`).
    public var id: ID
    public var hold: Hold
}

extension Repository {
    /// Every readable hold, oldest first.
    ///
    /// A hold object that cannot be read makes this fail rather than be skipped: retention must
    /// never release a snapshot because its hold was unreadable.
    public func holds() async throws -> [HoldRecord] {
        var result: [HoldRecord] = []
        for info in try await storage.list(.hold) {
            guard let id = ID(hex: info.handle.name) else { continue }
            let data = try await loadSealed(.hold, id)
            do {
                result.append(HoldRecord(id: id, hold: try JSONCoding.decoder.decode(Hold.self, from: data)))
            } catch {
                throw BunkerError(.corruptObject, "Hold holds/\(id.hex) cannot be decoded, so retention cannot tell what it protects; nothing is deleted while it is unreadable.", cause: error)
            }
        }
        return result.sorted { ($0.hold.time, $0.id.hex) < ($1.hold.time, $1.id.hex) }
    }

    /// Places a hold on a snapshot (given by id, unique prefix or `latest`).
    ///
    /// Takes a shared lock, so that it cannot interleave with a forget (which holds the exclusive
    /// lock while it reads holds and deletes snapshots).
    public func addHold(to reference: String, reason: String) async throws -> HoldRecord {
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else {
            throw BunkerError(.invalidArgument, "A hold needs a reason (--reason \"case 2026-114\"): the audit trail must say why data is kept.")
        }
        return try await withLock(exclusive: false) {
            let target = try await findSnapshot(reference)
            let hold = Hold(snapshot: target.id, reason: reason, time: now(),
                            username: currentUserName(), hostname: HostIdentity.name)
            let handle = try await saveSealed(.hold, JSONCoding.encoder.encode(hold))
            return HoldRecord(id: ID(hex: handle.name)!, hold: hold)
        }
    }

    /// Removes every hold on a snapshot (given by id or unique prefix of the snapshot or of a
    /// hold); returns the holds removed.
    public func removeHolds(_ reference: String) async throws -> [HoldRecord] {
        try await withLock(exclusive: false) {
            let all = try await holds()
            let needle = reference.lowercased()
            guard needle.count >= 4, needle.allSatisfy(\.isHexDigit) else {
                throw BunkerError(.invalidArgument, "\"\(reference)\" is not an id; give at least 4 hex digits of the snapshot (or of the hold) as `bunker hold list` shows them.")
            }
            var matching = all.filter { $0.hold.snapshot.hex.hasPrefix(needle) }
            if matching.isEmpty { matching = all.filter { $0.id.hex.hasPrefix(needle) } }
            guard !matching.isEmpty else {
                throw BunkerError(.snapshotNotFound, "No hold matches \"\(reference)\"; `bunker hold list` shows them.")
            }
            guard Set(matching.map(\.hold.snapshot)).count == 1 else {
                throw BunkerError(.invalidArgument, "\"\(reference)\" matches holds on several snapshots; give more digits.")
            }
            for record in matching {
                try await storage.remove(ObjectHandle(.hold, record.id))
            }
            return matching
        }
    }
}
