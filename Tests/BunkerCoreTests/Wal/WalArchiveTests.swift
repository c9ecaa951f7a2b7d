import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// WAL file names, object names and the gap walk, without a server.
@Suite struct WalArchiveTests {
    @Test(arguments: [
        ("000000010000000000000001", WalFileName.Kind.segment),
        ("00000002.history", .history),
        ("000000010000000A000000FF.00000028.backup", .backup),
        ("000000010000000000000003.partial", .partial),
        ("000000010000000000000003.stream", .stream),
    ])
    func walFileNamesAreParsed(_ text: String, _ kind: WalFileName.Kind) throws {
        let name = try #require(WalFileName(text))
        #expect(name.kind == kind)
        #expect(name.timeline == UInt32(text.prefix(8), radix: 16))
    }

    @Test(arguments: ["", "RECOVERYXLOG", "pg_wal/000000010000000000000001", "000000000000000000000001", "00000001000000000000000g", "000000010000000000000001.tmp"])
    func otherNamesAreNotWalFiles(_ text: String) {
        #expect(WalFileName(text) == nil)
    }

    @Test func segmentNumbersCrossLogBoundaries() throws {
        let size = 16 << 20
        let last = try #require(WalFileName("0000000100000000000000FF"))
        let next = try #require(WalFileName("000000010000000100000000"))
        let lastNumber = try #require(last.segmentNumber(segmentSize: size))
        #expect(next.segmentNumber(segmentSize: size) == lastNumber + 1)
        #expect(WalFileName.segment(timeline: 1, number: 256, segmentSize: size) == "000000010000000100000000")
    }

    @Test(arguments: ["clinic", "app-db", "a b/c", "~x"])
    func objectNamesRoundTripEveryScope(_ source: String) throws {
        let scope = WalObject.scope(of: source)
        let id = ID.sha256(of: Data(source.utf8))
        let parsed = try #require(WalObject.Name("\(scope)-000000010000000000000001-\(id.hex)"))
        guard case .file(let s, let file, let stored) = parsed else {
            Issue.record("not a file: \(parsed)")
            return
        }
        #expect(s == scope && file.text == "000000010000000000000001" && stored == id)
        #expect(!scope.contains("/") && !scope.hasPrefix("."))
        #expect(WalObject.Name("\(scope)-cluster-7312345678901234567") == .cluster(scope: scope, systemIdentifier: 7312345678901234567))
    }

    @Test func pushFetchAndGapsInARepository() async throws {
        try await withTemporaryDirectory { dir in
            let repository = try await TestRepository.create(at: dir + "/repo")
            let archive = WalArchive(repository: repository, source: "clinic")
            var segments: [String: Data] = [:]
            for n in [1, 2, 3, 6] {
                let name = String(format: "0000000100000000%08X", n)
                segments[name] = FakeWal.segment(number: n)
                #expect(try await archive.push(name, contents: segments[name]!).outcome == .stored)
            }
            #expect(try await archive.push("000000010000000000000002", contents: segments["000000010000000000000002"]!).outcome == .alreadyArchived)
            await #expect(throws: BunkerError.self) {
                try await archive.push("000000010000000000000002", contents: FakeWal.segment(number: 2, filler: 7))
            }
            #expect(try await archive.fetch("000000010000000000000003") == segments["000000010000000000000003"])
            #expect(try await archive.fetch("000000010000000000000004") == nil)
            #expect(try await archive.fetch("00000002.history") == nil)

            let summary = try await archive.summary()
            #expect(summary.timelines.map(\.segments) == [4])
            #expect(summary.gaps.map { "\($0.timeline) \($0.firstMissing) \($0.lastMissing) \($0.count)" } == ["1 000000010000000000000004 000000010000000000000005 2"])
            let report = try await Checker(repository: try await TestRepository.open(at: dir + "/repo")).check(readData: true)
            #expect(report.errors.map(\.kind) == ["wal_gap"])
            #expect(report.walObjectsRead == 4)
        }
    }

    /// The segment being written, streamed: each copy replaces the one before, a fetch of the
    /// segment answers the newest while the segment is not archived, the archived segment wins
    /// once it is, and the streamed copy then goes.
    @Test func aStreamedSegmentIsReplacedServedUntilArchivedAndThenRemoved() async throws {
        try await withTemporaryDirectory { dir in
            let repository = try await TestRepository.create(at: dir + "/repo")
            let archive = WalArchive(repository: repository, source: "clinic")
            try await archive.push(FakeWal.segmentName(1), contents: FakeWal.segment(number: 1))
            let name = FakeWal.segmentName(2)
            #expect(try await archive.fetch(name) == nil)
            try await archive.pushStreamed(name, contents: FakeWal.segment(number: 2, filler: 1))
            #expect(try await archive.fetch(name) == FakeWal.segment(number: 2, filler: 1))
            let newer = FakeWal.segment(number: 2, filler: 2)
            try await archive.pushStreamed(name, contents: newer)
            #expect(try await archive.fetch(name) == newer)
            let objects = try await repository.storage.list(.wal, prefix: WalObject.scope(of: "clinic") + "-" + name + ".stream-")
            #expect(objects.count == 1, "the older streamed copy was replaced")
            // No gap: the streamed copy counts as the segment's.
            #expect(try await archive.summary().gaps.isEmpty)
            // Streamed copies are not pushed as archive_command files, and only segments stream.
            await #expect(throws: BunkerError.self) { try await archive.push(name + ".stream", contents: newer) }
            await #expect(throws: BunkerError.self) { try await archive.pushStreamed("00000002.history", contents: Data("1\t0/0\tx\n".utf8)) }
            // From another cluster: refused as a segment would be.
            await #expect(throws: BunkerError.self) {
                try await archive.pushStreamed(FakeWal.segmentName(3), contents: FakeWal.segment(number: 3, systemIdentifier: 42))
            }

            let whole = FakeWal.segment(number: 2, filler: 9)
            #expect(try await archive.push(name, contents: whole).outcome == .stored)
            #expect(try await archive.fetch(name) == whole)
            #expect(try await archive.removeStreamedCopiesOfArchivedSegments() == 1)
            #expect(try await repository.storage.list(.wal, prefix: WalObject.scope(of: "clinic") + "-" + name + ".stream-").isEmpty)
        }
    }

    @Test func segmentsBeforeTheOldestKeptBaseBackupAreRemovedAndHistoriesKept() async throws {
        try await withTemporaryDirectory { dir in
            let repository = try await TestRepository.create(at: dir + "/repo")
            let archive = WalArchive(repository: repository, source: "clinic")
            for n in 1...5 { _ = try await archive.push(String(format: "0000000100000000%08X", n), contents: FakeWal.segment(number: n)) }
            _ = try await archive.push("00000002.history", contents: Data("1\t0/3000000\tno recovery target specified\n".utf8))
            _ = try await archive.push("000000020000000000000003", contents: FakeWal.segment(number: 3))
            let planned = try await archive.removeSegments(before: "000000010000000000000004", dryRun: true)
            #expect(planned.count == 3)
            #expect(try await archive.summary().objects == 7, "a dry run removes nothing")
            #expect(try await archive.removeSegments(before: "000000010000000000000004") == planned)
            let summary = try await archive.summary()
            #expect(summary.timelines.map { "\($0.timeline):\($0.firstSegment)-\($0.lastSegment)" } == ["1:000000010000000000000004-000000010000000000000005", "2:000000020000000000000003-000000020000000000000003"])
            #expect(summary.histories == ["00000002.history"])
            #expect(summary.gaps.isEmpty)
        }
    }

    @Test func aSegmentOfAnotherClusterIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let repository = try await TestRepository.create(at: dir + "/repo")
            let archive = WalArchive(repository: repository, source: "clinic")
            _ = try await archive.push("000000010000000000000001", contents: FakeWal.segment(number: 1))
            do {
                _ = try await archive.push("000000010000000000000002", contents: FakeWal.segment(number: 2, systemIdentifier: 42))
                Issue.record("another cluster's segment was archived")
            } catch let error as BunkerError {
                #expect(error.code == .walClusterMismatch)
            }
        }
    }
}
