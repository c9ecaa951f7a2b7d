import BunkerCore
import BunkerService
import BunkerSources
import BunkerTesting
import Foundation
import Testing

/// Source kinds are made in one place (`SourceKinds`), each from its own `[[source]]` table, and
/// a snapshot's source that is no longer configured is restored only where its record suffices.
@Suite struct SourceKindsTests {
    /// A `[[source]]` table of each registered kind, beyond its name and kind.
    static let tables = [
        "files": "path = \"studies\"\nexclude = [\"*.tmp\"]\n",
        "sqlite": "path = \"/var/lib/app/app.db\"\n",
        "postgres": "host = \"db.example\"\ndatabase = \"clinic\"\n",
    ]

    @Test func everyRegisteredKindIsMadeFromItsTableAndFromItsRecord() throws {
        #expect(Set(Self.tables.keys) == Set(SourceKinds.all.map { $0.kind.rawValue }), "a new kind gets a sample table here")
        for definition in SourceKinds.all {
            let kind = definition.kind.rawValue
            let text = "[[source]]\nname = \"s\"\nkind = \"\(kind)\"\n" + (Self.tables[kind] ?? "")
            let source = try #require(try Configuration(text: text, file: "/etc/bunker/bunker.toml", environment: [:]).sources.first)
            #expect(source.name == "s" && source.kind == definition.kind)
            #expect(source.kind.isDatabase == definition.holdsDatabase)
            let rebuilt = try SourceKinds.makeSource(restoring: SnapshotSource(name: "s", kind: kind, origin: source.origin))
            #expect(rebuilt.kind == definition.kind && rebuilt.origin == source.origin)
        }
    }

    @Test func aKindReadsItsOwnKeysWithPathsFromTheConfigurationsDirectory() throws {
        let text = "[[source]]\nname = \"s\"\nkind = \"files\"\n" + Self.tables["files"]!
        let source = try #require(try Configuration(text: text, file: "/etc/bunker/bunker.toml", environment: [:]).sources.first as? FilesSource)
        #expect(source.path == "/etc/bunker/studies")
        #expect(source.excludes == ["*.tmp"])
        #expect(throws: BunkerError.self, "a key of another kind is refused") {
            try Configuration(text: text + "database = \"clinic\"\n", file: "/etc/bunker/bunker.toml", environment: [:])
        }
    }

    @Test func anUnknownKindIsAnErrorListingTheKnownOnes() throws {
        do {
            _ = try Configuration(text: "[[source]]\nname = \"db\"\nkind = \"oracle\"\n", file: "/etc/bunker.toml", environment: [:])
            Issue.record("accepted an unknown kind")
        } catch let error as BunkerError {
            #expect(error.message == "/etc/bunker.toml:3: kind in [source] number 0: kind must be files, sqlite or postgres, not \"oracle\".")
        }
        #expect(SourceKinds.names == "files, sqlite or postgres")
        #expect(!SourceKind(rawValue: "oracle").isDatabase, "a kind this version does not know is restored (or refused) as a tree")
        do {
            _ = try SourceKinds.makeSource(restoring: SnapshotSource(name: "db", kind: "oracle", origin: "oracle://db"))
            Issue.record("made a source of an unknown kind")
        } catch let error as BunkerError {
            #expect(error.code == .unsupportedFormat && error.message.contains("upgrade Bunker"), "\(error.message)")
        }
    }

    /// A snapshot of a PostgreSQL source that the configuration no longer has: its dump is
    /// written to files (`--sql`, `--target`), but nothing that needs a server guesses one.
    @Test func aPostgresSourceNoLongerConfiguredRestoresOnlyToFiles() async throws {
        try await withTemporaryDirectory { dir in
            let service = try await makeService(in: dir, sources: "")
            let forge = SnapshotForge(service.repository)
            let sql = "CREATE TABLE patients (id int);\n"
            let clinic = try await forge.directory(Array("clinic".utf8), [try await forge.file(Array("database.sql".utf8), sql)])
            let record = SnapshotSource(name: "clinic", kind: "postgres", origin: "postgres://backup@db.example:5432/clinic", details: ["format": "plain", "file": "database.sql"])
            let id = try await forge.snapshot([clinic], sources: [record], backupType: "full").hex

            var request = SourceRestoreRequest(snapshot: id)
            request.target = .sql(dir + "/clinic.sql")
            _ = try await service.restore(request)
            #expect(try String(contentsOfFile: dir + "/clinic.sql", encoding: .utf8) == sql)

            request.target = .directory(dir + "/out")
            _ = try await service.restore(request)
            #expect(try String(contentsOfFile: dir + "/out/clinic/database.sql", encoding: .utf8) == sql)

            for target in [RestoreTarget.inPlace, .database("clinic")] {
                request.target = target
                await #expect(throws: BunkerError.self, "\(target) needs a server") { try await service.restore(request) }
            }

            let drill = try await service.drill(snapshot: id)
            #expect(!drill.passed)
            let load = try #require(drill.sources.first?.checks.first)
            #expect(load.name == "load" && !load.passed)
            #expect(load.detail.contains("not configured here") && load.detail.contains("bunker.toml"), "\(load.detail)")
        }
    }
}
