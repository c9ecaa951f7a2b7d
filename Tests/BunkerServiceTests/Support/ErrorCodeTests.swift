import BunkerCore
import BunkerService
import Foundation
import Testing

/// Error codes are open: a module declares its own, and they travel as their plain strings.
@Suite struct ErrorCodeTests {
    @Test func aCodeDeclaredByTheServiceIsAPlainStringOnTheWire() throws {
        let error = BunkerError(.auditTampered, "rows changed")
        let encoded = try JSONEncoder().encode(["code": error.code])
        #expect(String(decoding: encoded, as: UTF8.self) == #"{"code":"audit_tampered"}"#)
        let decoded = try JSONDecoder().decode([String: BunkerError.Code].self, from: encoded)
        #expect(decoded["code"] == .auditTampered)
        #expect(decoded["code"] != .catalog)
    }

    @Test func aCodeNoModuleDeclaresStillMatchesItself() {
        let code = BunkerError.Code("object_locked")
        #expect(code == BunkerError.Code(rawValue: "object_locked"))
        #expect(code.description == "object_locked")
        switch code {
        case .objectExists, .objectNotFound: Issue.record("an undeclared code matched a declared one")
        default: break
        }
    }
}
