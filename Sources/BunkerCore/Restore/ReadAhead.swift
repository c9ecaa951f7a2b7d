import Foundation
import Synchronization

/// What a restore will read, known before it writes anything: every directory listing it opens,
/// and every blob of every file it writes, in the order the files are met (depth first, as the
/// snapshot lists them).
public struct RestorePlan: Sendable {
    public var trees: [ID: Tree] = [:]
    public var blobs: [ID] = []

    public init() {}
}

extension Repository {
    /// From an object store (a storage with a concurrency limit), a restore reads ahead: see
    /// ``ReadAheadLoader``. From a local directory each read costs a system call, not a round
    /// trip, and reading ahead would only hold memory.
    public var readsAhead: Bool {
        storage.capability(ConcurrencyLimitedStorage.self) != nil
    }

    public func readingAhead(_ plan: RestorePlan) -> any BlobLoader {
        ReadAheadLoader(repository: self, plan: plan)
    }
}

/// Serves a restore from ranges of packs read before it asks for them.
///
/// From an object store every request waits a round trip, and a restore that asks file by file
/// for the blobs it needs next makes thousands of small requests with few of them in flight: it
/// waits more than it works. Knowing the whole plan in advance, this loader cuts it into
/// *segments*, runs of units that lie close together in one pack (at most 8 MiB, with gaps of at
/// most ``Repository/readGap``), in the order the plan first needs them, so that a restore reads
/// each pack in a few large requests. The first ask that falls into a segment also starts the
/// segments that follow it in the plan, up to 32 MiB ahead, as long as no more than 64 MiB are held:
/// every place the restore reads from at once (a large database file and a tree of small
/// documents, restored side by side) gets a stream of its own.
///
/// The 64 MiB are a bound, not a goal. A segment stays held until every ask of it came, and the
/// restore walks many folders at once, so the window can fill with segments whose remaining
/// asks come later. An ask whose segment is not read then does not start it: it and the asks
/// right after it in its batch that lie in the same segment are read as one range, held by
/// nobody once they are served. Before, such a segment was read whole whatever the window held, and
/// in a restore of the benchmark's 1 GiB set from SeaweedFS the segments held reached 113 MiB
/// and the process 279 MiB. A bundle (half a MiB of small files' or pages' plaintext) opened
/// for one member counts in the window too while it is kept for members asked later; there it
/// had reached 70 MiB beside the segments.
///
/// A segment is dropped as soon as every blob of the plan that lies in it was handed out; an
/// opened bundle as soon as its last member was (from it, or the usual way after a failed read).
/// Asks that never come (a file that failed part way, a folder that could not be created) leave
/// what they would have used held until the restore ends: with the window full, the rest of
/// the restore reads directly, more slowly but the same. A blob asked for
/// outside the plan, or again after its segment was dropped, is read the usual way. Everything
/// handed out is authenticated, decompressed and checked against its id exactly as
/// ``Repository/loadBlobs(_:decompressor:)`` does.
final class ReadAheadLoader: BlobLoader, Sendable {
    /// How far past the segment being read the next segments are started.
    static let ahead = 32 << 20
    /// At most this many bytes held: segments read or being read, and bundles opened and kept
    /// for members still to be asked.
    static let window = 64 << 20
    /// The longest request.
    static let maximumSegment = 8 << 20

    private struct UnitKey: Hashable {
        let pack: ID
        let offset: UInt32

        init(pack: ID, offset: UInt32) {
            self.pack = pack
            self.offset = offset
        }

        init(_ location: BlobLocation) {
            self.init(pack: location.pack, offset: location.blob.offset)
        }
    }

    private struct Segment {
        let pack: ID
        let range: Range<Int>
        /// Asks of the plan that fall into it.
        var uses: Int
        var task: Task<Data, any Error>?
        var dropped = false
    }

    private struct State {
        var segments: [Segment]
        /// Bundles opened and not yet handed out in full: the asks still to come, and the
        /// plaintext when the window had room to keep it for them.
        var opened: [UnitKey: (plaintext: Data?, uses: Int)] = [:]
        var held = 0
        var peakHeld = 0
        var directReads = 0
        var bundlesKept = 0
    }

    private let repository: Repository
    private let window: Int
    private let ahead: Int
    private let trees: [ID: Tree]
    private let segmentOfUnit: [UnitKey: Int]
    /// Asks of the plan per bundle, for dropping its plaintext after the last.
    private let bundleUses: [UnitKey: Int]
    private let state: Mutex<State>

    init(repository: Repository, plan: RestorePlan, window: Int = ReadAheadLoader.window, ahead: Int = ReadAheadLoader.ahead) {
        self.repository = repository
        self.window = window
        self.ahead = ahead
        self.trees = plan.trees
        let gap = repository.readGap
        var segments: [Segment] = []
        var segmentOfUnit: [UnitKey: Int] = [:]
        var bundleUses: [UnitKey: Int] = [:]
        // Each pack's segments, the newest last: a unit inside one of them (in a gap read anyway)
        // joins it; a unit a little past the newest's end extends it, unless that would reach
        // into another segment.
        var segmentsOfPack: [ID: [Int]] = [:]
        for id in plan.blobs {
            guard let location = repository.index.lookup(id) else { continue }
            let blob = location.blob
            let key = UnitKey(pack: location.pack, offset: blob.offset)
            if blob.member != nil { bundleUses[key, default: 0] += 1 }
            let start = Int(blob.offset)
            let end = start + Int(blob.length)
            let mine = segmentsOfPack[location.pack, default: []]
            if let known = segmentOfUnit[key] ?? mine.first(where: { segments[$0].range.contains(start) }) {
                segments[known].uses += 1
                segmentOfUnit[key] = known
                continue
            }
            if let i = mine.last, start >= segments[i].range.upperBound, start - segments[i].range.upperBound <= gap,
               end - segments[i].range.lowerBound <= Self.maximumSegment,
               !mine.contains(where: { segments[$0].range.overlaps(segments[i].range.upperBound..<end) }) {
                segments[i] = Segment(pack: location.pack, range: segments[i].range.lowerBound..<end, uses: segments[i].uses + 1)
                segmentOfUnit[key] = i
            } else {
                segments.append(Segment(pack: location.pack, range: start..<end, uses: 1))
                segmentOfUnit[key] = segments.count - 1
                segmentsOfPack[location.pack, default: []].append(segments.count - 1)
            }
        }
        self.segmentOfUnit = segmentOfUnit
        self.bundleUses = bundleUses
        self.state = Mutex(State(segments: segments))
    }

    deinit {
        state.withLock { state in
            for segment in state.segments { segment.task?.cancel() }
        }
    }

    var parallelReads: Int { repository.parallelReads }

    /// The most bytes held at once so far (segments, and bundles kept for later members).
    var peakHeld: Int { state.withLock { $0.peakHeld } }
    /// Bytes held now: none once every ask of the plan was served.
    var held: Int { state.withLock { $0.held } }
    /// Reads made for the asks of one batch alone, the window being full (``direct``).
    var directReads: Int { state.withLock { $0.directReads } }
    /// Bundles kept for members asked later.
    var bundlesKept: Int { state.withLock { $0.bundlesKept } }

    func loadTree(_ id: ID) async throws -> Tree {
        if let tree = trees[id] { return tree }
        return try await repository.loadTree(id)
    }

    func loadBlob(_ id: ID, decompressor: ZstdDecompressor?) async throws -> Data {
        try await loadBlobs([id], decompressor: decompressor)[0]
    }

    func loadBlobs(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data] {
        try await blobs(ids, decompressor: decompressor, checked: true)
    }

    func loadContent(_ ids: [ID], decompressor: ZstdDecompressor?) async throws -> [Data] {
        try await blobs(ids, decompressor: decompressor, checked: false)
    }

    private func blobs(_ ids: [ID], decompressor: ZstdDecompressor?, checked: Bool) async throws -> [Data] {
        var result: [Data] = []
        result.reserveCapacity(ids.count)
        // The bundle opened last: its members are asked one after another (a database's pages,
        // a batch's small files), and are served from one opening even when it is not kept.
        var bundle: OpenedBundle?
        var i = 0
        while i < ids.count {
            guard let location = repository.index.lookup(ids[i]), let segment = segmentOfUnit[UnitKey(location)] else {
                result.append(try await repository.loadBlob(ids[i], decompressor: decompressor))
                i += 1
                continue
            }
            switch start(segment) {
            case .dropped:
                answered(location)
                result.append(try await repository.loadBlob(ids[i], decompressor: decompressor))
                i += 1
            case .reading(let task):
                result.append(try await blob(ids[i], location, segment: segment, task: task, bundle: &bundle, decompressor: decompressor, checked: checked))
                i += 1
            case .windowFull:
                // The asks that follow in the same segment come along: one request for them all.
                var run = [location]
                while i + run.count < ids.count, let next = repository.index.lookup(ids[i + run.count]),
                      segmentOfUnit[UnitKey(next)] == segment {
                    run.append(next)
                }
                result += try await direct(ids[i..<(i + run.count)], run, segment: segment, bundle: &bundle, decompressor: decompressor, checked: checked)
                i += run.count
            }
        }
        return result
    }

    private func blob(_ id: ID, _ location: BlobLocation, segment: Int, task: Task<Data, any Error>, bundle: inout OpenedBundle?,
                      decompressor: ZstdDecompressor?, checked: Bool) async throws -> Data {
        let data: Data
        do {
            data = try await task.value
        } catch {
            // The storage's own retries ran out, or the restore is cancelled: every ask of this
            // segment is read on its own, which gives a failed read a second chance and makes a
            // cancelled one fail as it would have anyway.
            drop(segment)
            answered(location)
            return try await repository.loadBlob(id, decompressor: decompressor)
        }
        defer { used(segment) }
        let from = state.withLock { $0.segments[segment].range.lowerBound }
        return try serve(location, from: data, startingAt: from, bundle: &bundle, decompressor: decompressor, checked: checked)
    }

    /// Asks whose segment is not read while the window is full: only the span of the pack from
    /// the first of them to the end of the last is read, for them alone and held by nobody once
    /// they are served. Reading their whole
    /// segment instead (up to 8 MiB, kept until every ask of it came, which may be much later)
    /// would let what a restore holds grow past any bound once the window is full.
    private func direct(_ ids: ArraySlice<ID>, _ run: [BlobLocation], segment: Int, bundle: inout OpenedBundle?,
                        decompressor: ZstdDecompressor?, checked: Bool) async throws -> [Data] {
        defer { for _ in run { used(segment) } }
        state.withLock { $0.directReads += 1 }
        let from = run.lazy.map { Int($0.blob.offset) }.min()!
        let span = from..<run.lazy.map { Int($0.blob.offset) + Int($0.blob.length) }.max()!
        let data: Data
        do {
            data = try await repository.storage.load(ObjectHandle(.pack, run[0].pack), range: span)
        } catch {
            // As for a segment whose read failed: each ask on its own.
            for location in run { answered(location) }
            var result: [Data] = []
            for id in ids { result.append(try await repository.loadBlob(id, decompressor: decompressor)) }
            return result
        }
        var result: [Data] = []
        for location in run {
            result.append(try serve(location, from: data, startingAt: from, bundle: &bundle, decompressor: decompressor, checked: checked))
        }
        return result
    }

    /// The blob at `location` out of `data`, a range of its pack read from offset `from`.
    private func serve(_ location: BlobLocation, from data: Data, startingAt from: Int, bundle: inout OpenedBundle?,
                       decompressor: ZstdDecompressor?, checked: Bool) throws -> Data {
        let blob = location.blob
        let at = data.startIndex + Int(blob.offset) - from
        let unit = data[at..<(at + Int(blob.length))]
        guard blob.member != nil else {
            return try repository.decodeBlob(unit, blob, pack: location.pack, decompressor: decompressor, checked: checked)
        }
        // A bundle: opened once for all its members and kept until the last of them was asked,
        // counted in the window like a segment; opened again for a later member when the window
        // had no room for it.
        let key = UnitKey(location)
        var opened = bundle?.key == key ? bundle?.plaintext : state.withLock { $0.opened[key]?.plaintext ?? nil }
        if opened == nil {
            opened = try repository.openUnit(unit, blob, pack: location.pack, decompressor: decompressor)
        }
        let plaintext = opened!
        bundle = OpenedBundle(key: key, plaintext: plaintext)
        answered(location, opened: plaintext)
        return try repository.extractBlob(blob, from: plaintext, pack: location.pack, checked: checked)
    }

    /// One ask of a bundle member served, from `opened` or (its read having failed, its segment
    /// dropped) the usual way: the last of the bundle's asks lets go of it; an earlier one keeps
    /// `opened` for the rest if the window has room. Asks of whole units need no bookkeeping.
    private func answered(_ location: BlobLocation, opened: Data? = nil) {
        guard location.blob.member != nil else { return }
        let key = UnitKey(location)
        state.withLock { state in
            var entry = state.opened[key] ?? (nil, bundleUses[key] ?? 1)
            entry.uses -= 1
            if entry.uses <= 0 {
                if let kept = entry.plaintext { state.held -= kept.count }
                state.opened[key] = nil
                return
            }
            if let opened, entry.plaintext == nil, state.held + opened.count <= window {
                entry.plaintext = opened
                state.held += opened.count
                state.peakHeld = max(state.peakHeld, state.held)
                state.bundlesKept += 1
            }
            state.opened[key] = entry
        }
    }

    private struct OpenedBundle {
        let key: UnitKey
        let plaintext: Data
    }

    private enum Admission {
        /// Every ask of the segment was served, or its read failed: the blob is read on its own.
        case dropped
        case reading(Task<Data, any Error>)
        /// The segment is not read, and reading it would hold more than the window.
        case windowFull
    }

    /// The read of `segment`, started now if it was not and the window has room for it, after
    /// starting the segments that follow it in the plan as far as the window allows.
    private func start(_ segment: Int) -> Admission {
        state.withLock { state in
            let asked = state.segments[segment]
            guard !asked.dropped else { return .dropped }
            var task = asked.task
            if task == nil && state.held + asked.range.count <= window {
                task = launch(segment, in: &state)
            }
            var i = segment + 1
            var ahead = 0
            while task != nil, i < state.segments.count, ahead < self.ahead {
                let next = state.segments[i]
                ahead += next.range.count
                if next.task == nil && !next.dropped {
                    guard state.held + next.range.count <= window else { break }
                    _ = launch(i, in: &state)
                }
                i += 1
            }
            return task.map { .reading($0) } ?? .windowFull
        }
    }

    private func launch(_ i: Int, in state: inout State) -> Task<Data, any Error> {
        if let task = state.segments[i].task { return task }
        let segment = state.segments[i]
        let storage = repository.storage
        let task = Task { try await storage.load(ObjectHandle(.pack, segment.pack), range: segment.range) }
        state.segments[i].task = task
        state.held += segment.range.count
        state.peakHeld = max(state.peakHeld, state.held)
        return task
    }

    /// One ask of the plan served from `segment`: the last drops it.
    private func used(_ segment: Int) {
        state.withLock { state in
            state.segments[segment].uses -= 1
            if state.segments[segment].uses <= 0 { Self.drop(segment, in: &state) }
        }
    }

    private func drop(_ segment: Int) {
        state.withLock { Self.drop(segment, in: &$0) }
    }

    private static func drop(_ segment: Int, in state: inout State) {
        guard !state.segments[segment].dropped else { return }
        state.segments[segment].dropped = true
        if state.segments[segment].task != nil { state.held -= state.segments[segment].range.count }
        state.segments[segment].task = nil
    }
}
