import BunkerCore
import BunkerTesting
import Foundation
import Testing

@testable import BunkerSources

/// The streaming tar reader against archives GNU tar writes in each of its formats.
@Suite struct TarReaderTests {
    /// Reads a whole archive: every entry's path, type and content.
    func entries(of archive: Data, pageSizes: @escaping ([String]) -> Int? = { _ in nil }) async throws -> [(entry: StreamedEntry, content: Data?)] {
        let reader = TarReader(input: DataInput(archive), keep: ["base/backup_label"], pageSizes: pageSizes)
        var result: [(StreamedEntry, Data?)] = []
        while let (entry, stream) = try await reader.nextEntry() {
            var content: Data?
            if let stream {
                var data = Data()
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 7000, alignment: 8)
                defer { buffer.deallocate() }
                while true {
                    try await stream.prepareRead(buffer.count)
                    let n = try stream.read(into: buffer)
                    if n == 0 { break }
                    data.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                }
                try stream.finish()
                content = data
            }
            result.append((entry, content))
        }
        try await reader.finish()
        return result
    }

    /// A tree with a long name (over 100 bytes), an empty file, a file of 20000 bytes, a symlink.
    func makeTree(_ dir: String) throws -> String {
        let long = String(repeating: "segment-", count: 16)
        try FileManager.default.createDirectory(atPath: "\(dir)/tree/base/\(long)", withIntermediateDirectories: true)
        try Data((0..<20000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: "\(dir)/tree/base/\(long)/16384"))
        try Data().write(to: URL(fileURLWithPath: "\(dir)/tree/empty"))
        try Data("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/tree/base/backup_label"))
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/tree/link", withDestinationPath: "base/\(long)/16384")
        return long
    }

    @Test(arguments: ["ustar", "gnu", "pax"])
    func readsEveryFormatGNUTarWrites(format: String) async throws {
        try await withTemporaryDirectory { dir in
            let long = try makeTree(dir)
            // ustar cannot hold the long names: leave them out there.
            let members = format == "ustar" ? "base/backup_label empty" : "base empty link"
            let made = try shell("tar --format=\(format) -C '\(dir)/tree' -cf '\(dir)/a.tar' \(members)")
            #expect(made.status == 0, "\(made.output)")
            let archive = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.tar"))
            let read = try await entries(of: archive) { $0.first == "base" ? 8192 : nil }
            let byPath = Dictionary(read.map { ($0.entry.path.joined(separator: "/"), $0) }, uniquingKeysWith: { $1 })
            #expect(byPath["empty"]?.content == Data())
            #expect(byPath["empty"]?.entry.pageSize == nil)
            if format != "ustar" {
                #expect(byPath["base"]?.entry.type == .directory)
                #expect(byPath["link"]?.entry.type == .symlink)
            }
            #expect(byPath["base/backup_label"]?.content.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("START WAL") == true)
            if format != "ustar" {
                let file = try #require(byPath["base/\(long)/16384"], "\(byPath.keys.sorted())")
                #expect(file.content == Data((0..<20000).map { UInt8($0 % 251) }))
                #expect(file.entry.pageSize == 8192)
                #expect(byPath["link"]?.entry.linkTarget == "base/\(long)/16384")
            }
        }
    }

    @Test func refusesAnArchiveCutShort() async throws {
        try await withTemporaryDirectory { dir in
            _ = try makeTree(dir)
            #expect(try shell("tar --format=gnu -C '\(dir)/tree' -cf '\(dir)/a.tar' .").status == 0)
            let archive = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.tar"))
            // Inside a header, inside a file's content, at a header's boundary.
            for cut in [700, 612, 1024, 5000, 15000] where cut < archive.count - 10240 {
                await #expect(throws: BunkerError.self, "cut at \(cut)") {
                    _ = try await entries(of: archive.prefix(cut))
                }
            }
        }
    }

    @Test func refusesABadChecksum() async throws {
        try await withTemporaryDirectory { dir in
            _ = try makeTree(dir)
            #expect(try shell("tar --format=gnu -C '\(dir)/tree' -cf '\(dir)/a.tar' empty").status == 0)
            var archive = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.tar"))
            archive[10] ^= 0x01
            await #expect(throws: BunkerError.self) { _ = try await entries(of: archive) }
        }
    }

    @Test func recoveryCommandIsQuotedForTheShellAndTheConfigurationFile() {
        var options = RecoveryOptions()
        options.walFetch = ["/opt/my bunker/bunker", "--config", "/etc/it's/bunker.toml", "wal", "fetch", "--source", "clinic"]
        #expect(options.restoreCommand == #"'/opt/my bunker/bunker' --config '/etc/it'\''s/bunker.toml' wal fetch --source clinic %f %p"#)
        #expect(RecoveryOptions.configQuoted(options.restoreCommand) == #"'''/opt/my bunker/bunker'' --config ''/etc/it''\\''''s/bunker.toml'' wal fetch --source clinic %f %p'"#)
        #expect(RecoveryOptions.shellQuoted("/data/100%") == "/data/100%%")
    }

    @Test(arguments: [
        ("2026-12-03 14:00:00+00", "2026-12-03 14:00:00.000000+00"),
        ("2026-12-03T14:00:00Z", "2026-12-03 14:00:00.000000+00"),
        ("2026-12-03 15:00:00.25+01", "2026-12-03 14:00:00.250000+00"),
        ("2026-12-03 09:00:00-05:00", "2026-12-03 14:00:00.000000+00"),
        ("2026-12-03 14:00:00 UTC", "2026-12-03 14:00:00.000000+00"),
    ])
    func readsTargetTimes(text: String, expected: String) {
        #expect(RecoveryTarget.parseTime(text).map(RecoveryTarget.postgresTime) == expected)
    }

    @Test func refusesATargetTimeWithoutOffset() {
        #expect(RecoveryTarget.parseTime("2026-12-03 14:00:00") == nil)
        #expect(RecoveryTarget.parseTime("yesterday") == nil)
    }
}
