import Foundation

extension Catalog {
    /// Records one finished event that is not an operation of its own (a notification delivered
    /// or not, an alert raised).
    public func record(_ action: String, target: String?, outcome: AuditOutcome, details: [String: String] = [:], by actor: AuditActor) throws {
        try write { db in
            try append(AuditEntry(action: action, target: target, outcome: outcome, details: details), by: actor, in: db)
        }
    }
}
