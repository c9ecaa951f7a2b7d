import BunkerCore
import BunkerService
import Foundation
import Hummingbird

/// `GET /audit` (paged, filtered), `GET /audit/verify` and `GET /audit/export`, for auditors
/// and administrators.
struct AuditController {
    let catalog: Catalog
    let tokens: TokenService

    /// The query of `GET /audit`.
    struct ListQuery: Decodable {
        var action: String?
        var actor: String?
        var since: String?
        var until: String?
        var after: Int64?
        var limit: Int?
    }

    struct Page: ResponseEncodable {
        var items: [AuditRecord]
        /// The `after` of the next page; nil on the last one.
        var nextAfter: Int64?

        enum CodingKeys: String, CodingKey {
            case items
            case nextAfter = "next_after"
        }
    }

    struct ExportQuery: Decodable {
        var format: String?
    }

    func register(on group: RouterGroup<BunkerRequestContext>) {
        let audit = group.group("audit")
            .add(middleware: AuthenticationMiddleware(catalog: catalog, tokens: tokens))
            .add(middleware: RoleMiddleware(allowed: [.auditor, .systemAdmin], action: "audit.read", catalog: catalog))
        audit.get(use: list)
        audit.get("verify", use: verify)
        audit.get("export", use: export)
    }

    @Sendable func list(_ request: Request, context: BunkerRequestContext) async throws -> Page {
        let query = try request.query(as: ListQuery.self, context: context)
        var filter = AuditFilter()
        filter.action = query.action
        filter.actor = query.actor
        filter.since = try query.since.map { try Self.time($0, name: "since") }
        filter.until = try query.until.map { try Self.time($0, name: "until") }
        filter.afterSeq = query.after
        filter.limit = min(max(query.limit ?? 100, 1), 1000)
        let rows = try catalog.auditRecords(filter)
        return Page(items: rows, nextAfter: rows.count == filter.limit ? rows.last?.seq : nil)
    }

    /// The check's result; a problem is told without the server's paths (the anchor file, the
    /// key), which `bunker audit verify` on the server names.
    @Sendable func verify(_ request: Request, context: BunkerRequestContext) async throws -> AuditVerification {
        var result = try catalog.verifyAudit()
        result.problem = result.problem.map(APIError.withoutPaths)
        return result
    }

    /// The whole trail, streamed a thousand rows at a time so memory stays bounded.
    @Sendable func export(_ request: Request, context: BunkerRequestContext) async throws -> Response {
        let query = try request.query(as: ExportQuery.self, context: context)
        guard let format = AuditExportFormat(rawValue: query.format ?? "jsonl") else {
            throw APIError(.badRequest, code: "invalid_request", "format must be jsonl or csv.")
        }
        let catalog = self.catalog
        var headers = HTTPFields()
        headers[.contentType] = format == .csv ? "text/csv; charset=utf-8" : "application/x-ndjson"
        headers[.contentDisposition] = "attachment; filename=\"bunker-audit.\(format.rawValue)\""
        let body = ResponseBody { writer in
            if let header = format.header { try await writer.write(ByteBuffer(string: header)) }
            var filter = AuditFilter()
            filter.limit = 1000
            while true {
                let rows = try catalog.auditRecords(filter)
                guard let last = rows.last else { break }
                try await writer.write(ByteBuffer(string: try rows.map(format.line).joined()))
                filter.afterSeq = last.seq
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    static func time(_ text: String, name: String) throws -> Date {
        guard let date = Timestamp.parse(text) else {
            throw APIError(.badRequest, code: "invalid_request", "\(name) must be an RFC 3339 time, like 2026-12-01T08:00:00Z.")
        }
        return date
    }
}

extension AuditVerification: ResponseEncodable {}
