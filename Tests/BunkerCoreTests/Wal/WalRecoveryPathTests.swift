import BunkerCore
import Foundation
import Testing

/// Which base backups can reach the newest timeline, and the gaps a recovery would meet on its
/// way there, without a server.
@Suite struct WalRecoveryPathTests {
    static let size = 16 << 20

    /// Segment `number` of the cluster as a location (its first byte).
    static func at(_ number: UInt64) -> UInt64 { number * UInt64(size) }

    static func path(histories: [UInt32: WalTimelineHistory] = [:], _ segments: [UInt32: [UInt64]], pushed: (UInt64) -> Date? = { _ in nil }) -> WalRecoveryPath {
        WalRecoveryPath(segmentSize: size, histories: histories,
                        segments: segments.mapValues { Dictionary(uniqueKeysWithValues: $0.map { ($0, pushed($0)) }) })
    }

    @Test func historyFilesAreReadAsPostgreSQLWritesThem() throws {
        let text = "1\t0/3000158\tbefore 2026-12-03 14:00:00.000000+00\n\n# a comment\n2\t1/A0000000\tno recovery target specified\n"
        let history = try #require(WalTimelineHistory.parse(text, of: 3))
        #expect(history.ancestors == [.init(timeline: 1, end: 0x0300_0158), .init(timeline: 2, end: 0x1_A000_0000)])
        #expect(WalTimelineHistory.parse("1\tnot-a-location\treason\n", of: 2) == nil)
        #expect(WalLocation.format(0x1_A000_0000) == "1/A0000000")
    }

    /// A base backup on the parent timeline is usable only if it ended before the child branched
    /// off: the safety base backup an in-place restore takes of the old timeline is not.
    @Test func onlyBaseBackupsBeforeTheBranchReachTheNewestTimeline() {
        let history = WalTimelineHistory(timeline: 2, ancestors: [.init(timeline: 1, end: Self.at(10) + 0x100)])
        let path = Self.path(histories: [2: history], [1: Array(3...12), 2: [10, 11]])
        #expect(path.newestTimeline(from: 1) == 2)
        #expect(path.canRecover(baseBackupOn: 1, endingAt: Self.at(5)))
        #expect(!path.canRecover(baseBackupOn: 1, endingAt: Self.at(12)), "taken on timeline 1 after timeline 2 branched off")
        #expect(path.canRecover(baseBackupOn: 2, endingAt: Self.at(11)))
    }

    @Test func noGapWhenEverySegmentOnTheWayIsArchived() {
        let history = WalTimelineHistory(timeline: 2, ancestors: [.init(timeline: 1, end: Self.at(6) + 0x28)])
        // Timeline 1 went on past the branch (segments 6–9): those are not on the way.
        let path = Self.path(histories: [2: history], [1: [3, 4, 5, 6, 8, 9], 2: [6, 7, 8]])
        #expect(path.gaps(from: 3, on: 1).isEmpty)
    }

    @Test func aMissingSegmentOnTheWayIsAGapWithWhenTheWalResumed() throws {
        let history = WalTimelineHistory(timeline: 2, ancestors: [.init(timeline: 1, end: Self.at(6) + 0x28)])
        let resumed = Date(timeIntervalSince1970: 1_800_000_000)
        // Timeline 1 has segment 7 (after the branch), but recovery reads timeline 2's.
        let path = Self.path(histories: [2: history], [1: [3, 4, 5, 6, 7], 2: [6, 9, 10]]) { $0 == 9 ? resumed : nil }
        let gaps = path.gaps(from: 4, on: 1)
        let gap = try #require(gaps.first)
        #expect(gaps.count == 1)
        #expect(gap.gap.timeline == 2 && gap.gap.firstMissing == "000000020000000000000007" && gap.gap.lastMissing == "000000020000000000000008" && gap.gap.count == 2, "\(gap)")
        #expect(gap.resumedAt == resumed)
        // Before the base backup's start, nothing counts.
        #expect(Self.path([1: [1, 5, 6]]).gaps(from: 5, on: 1).isEmpty)
    }

    @Test func aGapOnTheParentTimelineBeforeTheBranchCounts() throws {
        let history = WalTimelineHistory(timeline: 2, ancestors: [.init(timeline: 1, end: Self.at(8))])
        let path = Self.path(histories: [2: history], [1: [3, 5, 6, 7], 2: [8, 9]])
        let gap = try #require(path.gaps(from: 3, on: 1).first)
        #expect(gap.gap.firstMissing == "000000010000000000000004" && gap.gap.count == 1)
    }

    /// A second restore went back before the first one's switch: timeline 3 left timeline 2 at
    /// segment 5, where timeline 2 was still timeline 1's past (it left timeline 1 at 9). From 5
    /// on, timeline 1 is not on the way, and a base backup of it that ended after 5 cannot reach 3.
    @Test func aLaterBranchBeforeAnEarlierSwitchEndsTheOlderTimelineThere() {
        let three = WalTimelineHistory(timeline: 3, ancestors: [.init(timeline: 1, end: Self.at(9)), .init(timeline: 2, end: Self.at(5))])
        #expect(three.effectiveAncestors.map(\.end) == [Self.at(5), Self.at(5)])
        let path = Self.path(histories: [2: WalTimelineHistory(timeline: 2, ancestors: [.init(timeline: 1, end: Self.at(9))]), 3: three],
                             [1: Array(1...10), 3: [5, 6]])
        #expect(path.canRecover(baseBackupOn: 1, endingAt: Self.at(4)))
        #expect(!path.canRecover(baseBackupOn: 1, endingAt: Self.at(7)), "timeline 3 branched off at 5")
        #expect(path.gaps(from: 2, on: 1).isEmpty, "segments 5 and 6 are read from timeline 3, which has them")
    }

    /// Missing WAL right after a base backup is a gap only when the archive holds WAL from before
    /// it: retention's window keeps WAL from its oldest base backup on, and an older base backup
    /// then restores to its own end.
    @Test func missingWalRightAfterABaseBackupIsAGapOnlyWhenEarlierWalIsArchived() throws {
        #expect(Self.path([1: [8, 9, 10]]).gaps(from: 4, on: 1).isEmpty, "WAL pruned up to a later base backup")
        let gap = try #require(Self.path([1: [3, 8, 9]]).gaps(from: 4, on: 1).first)
        #expect(gap.gap.firstMissing == "000000010000000000000004" && gap.gap.count == 4)
    }

    /// What waits in the spool is fetched from there: it closes a gap in the repository.
    @Test func spooledFilesCount() {
        var path = Self.path([1: [3, 4, 6]])
        #expect(path.gaps(from: 3, on: 1).count == 1)
        path.add([("000000010000000000000005", nil), ("00000002.history", Data("1\t0/7000000\tbefore\n".utf8))])
        #expect(path.gaps(from: 3, on: 1).isEmpty)
        #expect(path.newestTimeline(from: 1) == 2)
    }

    @Test func theNewestTimelineIsTheLastOfAnUnbrokenRunOfHistories() {
        let two = WalTimelineHistory(timeline: 2, ancestors: [.init(timeline: 1, end: Self.at(4))])
        let four = WalTimelineHistory(timeline: 4, ancestors: [.init(timeline: 1, end: Self.at(4)), .init(timeline: 3, end: Self.at(6))])
        let path = Self.path(histories: [2: two, 4: four], [1: [1]])
        #expect(path.newestTimeline(from: 1) == 2, "PostgreSQL looks for 00000003.history next, and stops there")
    }
}
