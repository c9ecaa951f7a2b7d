import Foundation
import Hummingbird

/// Checks of path parameters: an id that is not of its shape is a 400 that names it, before it
/// reaches the repository or a file name.
enum Validate {
    /// A snapshot id or an unambiguous prefix of one: 8 to 64 lowercase hex digits.
    static func backupID(_ context: BunkerRequestContext) throws -> String {
        let id = context.parameters.get("backup_id") ?? ""
        guard (8...64).contains(id.utf8.count), id.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw APIError(.badRequest, code: "invalid_request", "A backup id is 8 to 64 lowercase hex digits (GET /api/v1/backups lists them).")
        }
        return id
    }

    /// A job id: a lowercase UUID.
    static func jobID(_ context: BunkerRequestContext) throws -> String {
        let id = context.parameters.get("job_id") ?? ""
        guard id.utf8.count == 36, UUID(uuidString: id) != nil, id == id.lowercased() else {
            throw APIError(.badRequest, code: "invalid_request", "A job id is a lowercase UUID, as POST /api/v1/backup with \"async\": true answers.")
        }
        return id
    }

    /// A restore's reason, trimmed: 1 to 1000 characters, recorded with the signature.
    static func restoreReason(_ reason: String?) throws -> String {
        guard let reason = reason?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty, reason.count <= 1000 else {
            throw APIError(.badRequest, code: "invalid_request", "A restore needs a reason (1 to 1000 characters): it is recorded with your signature.")
        }
        return reason
    }

    /// The `limit` query of a listing (backups, jobs): 1 to 1000, 50 when absent.
    static func listLimit(_ request: Request, context: BunkerRequestContext) throws -> Int {
        struct LimitQuery: Decodable {
            var limit: String?
        }
        // Read as text, so that `limit=many` is told what limit takes, not a decoder's words.
        guard let text = try request.query(as: LimitQuery.self, context: context).limit else { return 50 }
        guard let limit = Int(text), (1...1000).contains(limit) else {
            throw APIError(.badRequest, code: "invalid_request", "limit must be a whole number from 1 to 1000 (default 50).")
        }
        return limit
    }
}

extension Request {
    /// The query decoded as `T`; anything that does not decode (a wrong type, a key given twice)
    /// is a 400 that says so, never a 500.
    func query<T: Decodable>(as type: T.Type, context: BunkerRequestContext) throws -> T {
        do {
            return try uri.decodeQuery(as: type, context: context)
        } catch let error as HTTPError {
            throw APIError(.badRequest, code: "invalid_request", "The query is not valid: \(error.body ?? "a parameter has the wrong type").")
        } catch {
            throw APIError(.badRequest, code: "invalid_request", "The query is not valid: a parameter has the wrong type or is given more than once.")
        }
    }
}
