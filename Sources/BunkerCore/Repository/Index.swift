import Foundation
import Synchronization

/// One index file's content: packs and the blobs each holds.
///
/// Stored sealed under `index/<sha256>`; plaintext layout: the magic `BKIX`, a version byte, then
/// a u32 count of superseded index ids and those ids (32 bytes each; prune uses them to replace
/// old index files), then a u32 count of packs, and per pack its id (32 bytes), a u32 entry count
/// and the entries. A blob sealed on its own takes 45 bytes: type (1), id (32), offset, length,
/// raw length (u32 each). Version 2 adds bundles: the marker 2, offset, length, raw length and
/// member count (u32 each), then per member its id (32) and plaintext length (u32). Files without
/// bundles are written as version 1, which older readers understand. All integers little-endian.
public struct IndexFile: Sendable {
    public var supersedes: [ID] = []
    public var packs: [(id: ID, blobs: [PackedBlob])] = []

    public init(supersedes: [ID] = [], packs: [(id: ID, blobs: [PackedBlob])] = []) {
        self.supersedes = supersedes
        self.packs = packs
    }

    static let magic = Data("BKIX".utf8)
    /// Bytes per blob record: type, id, offset, length, raw length.
    static let recordSize = 1 + 32 + 4 + 4 + 4
    /// Bytes of a bundle record before its members: marker, offset, length, raw length, count.
    static let bundleRecordSize = 1 + 4 + 4 + 4 + 4

    func encoded() -> Data {
        let bundled = packs.contains { $0.blobs.contains { $0.member != nil } }
        var out = IndexFile.magic
        out.append(bundled ? 2 : 1)
        out.appendLittleEndian(UInt32(supersedes.count))
        for id in supersedes { out.append(contentsOf: id.bytes) }
        out.appendLittleEndian(UInt32(packs.count))
        for pack in packs {
            let units = PackFormat.units(pack.blobs)
            out.append(contentsOf: pack.id.bytes)
            out.appendLittleEndian(UInt32(units.count))
            for unit in units { PackFormat.appendEntry(unit, to: &out, withOffset: true) }
        }
        return out
    }

    init(decoding data: Data, name: ID) throws {
        func damaged(_ what: String) -> BunkerError {
            BunkerError(.corruptObject, "Index \(name.short) \(what).")
        }
        var reader = ByteReader(data)
        guard try reader.bytes(4) == IndexFile.magic else {
            throw BunkerError(.unsupportedFormat, "Index \(name.short) has an unknown format; upgrade Bunker.")
        }
        let version = try reader.byte()
        guard version == 1 || version == 2 else {
            throw BunkerError(.unsupportedFormat, "Index \(name.short) has format version \(version), which this Bunker cannot read; upgrade Bunker.")
        }
        for _ in 0..<(try reader.uint32()) { supersedes.append(ID(bytes: try reader.bytes(32))) }
        let packCount = try reader.uint32()
        let rest = try reader.bytes(reader.remaining)
        try rest.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var at = 0
            func need(_ count: Int) throws {
                guard raw.count - at >= count else { throw damaged("is truncated") }
            }
            func u32() -> UInt32 {
                defer { at += 4 }
                return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            }
            func id() -> ID {
                defer { at += 32 }
                return ID(bytes: UnsafeRawBufferPointer(rebasing: raw[at..<(at + 32)]))
            }
            for _ in 0..<packCount {
                try need(36)
                let packID = id()
                let count = Int(u32())
                var blobs: [PackedBlob] = []
                blobs.reserveCapacity(count)
                for _ in 0..<count {
                    try need(1)
                    let kind = raw[at]
                    at += 1
                    if kind == PackFormat.bundleMarker && version >= 2 {
                        try need(16)
                        let (offset, length, rawLength, members) = (u32(), u32(), u32(), Int(u32()))
                        guard members > 0 else { throw damaged("lists an empty bundle") }
                        try need(members * PackFormat.memberEntrySize)
                        var inner: UInt32 = 0
                        for _ in 0..<members {
                            let memberID = id()
                            let memberLength = u32()
                            guard memberLength > 0, !inner.addingReportingOverflow(memberLength).overflow else {
                                throw damaged("lists a bundle member of impossible length")
                            }
                            blobs.append(PackedBlob(type: .data, id: memberID, offset: offset, length: length, rawLength: rawLength,
                                                    member: BundleMember(offset: inner, length: memberLength)))
                            inner += memberLength
                        }
                        guard Int(inner) == blobs.last!.unitPlaintextLength else {
                            throw damaged("lists a bundle whose members do not fill it")
                        }
                    } else {
                        guard let type = BlobType(rawValue: kind) else { throw damaged("names an unknown blob type") }
                        try need(IndexFile.recordSize - 1)
                        let blobID = id()
                        blobs.append(PackedBlob(type: type, id: blobID, offset: u32(), length: u32(), rawLength: u32()))
                    }
                }
                packs.append((packID, blobs))
            }
            guard at == raw.count else { throw damaged("has trailing bytes") }
        }
    }
}

/// Where a blob is: its pack and its place in it.
public struct BlobLocation: Sendable {
    public let pack: ID
    public let blob: PackedBlob
}

/// The in-memory union of every index file, plus packs written by this process and not yet
/// named by an index file, plus blobs being written right now ("reserved").
///
/// A blob is saved at most once per process: ``reserve(_:)`` answers true to exactly one caller.
public final class MasterIndex: Sendable {
    private typealias Entry = BlobTable.Entry

    fileprivate struct State {
        var packs: [ID] = []
        var packNumbers: [ID: Int32] = [:]
        var entries = BlobTable()
        var reserved: Set<ID> = []
        var unsaved: [(id: ID, blobs: [PackedBlob])] = []
        var indexFiles: [ID] = []

        mutating func number(of pack: ID) -> Int32 {
            if let existing = packNumbers[pack] { return existing }
            let number = Int32(packs.count)
            packs.append(pack)
            packNumbers[pack] = number
            return number
        }

        /// Adds an index file's packs without looking each blob up (see ``BlobTable/stage(_:_:)``).
        mutating func stage(_ file: IndexFile) {
            entries.reserve(file.packs.reduce(0) { $0 + $1.blobs.count })
            for pack in file.packs {
                let number = number(of: pack.id)
                for blob in pack.blobs { entries.stage(blob.id, Entry(pack: number, blob)) }
            }
        }

        mutating func insert(pack: ID, blobs: [PackedBlob]) {
            let number = number(of: pack)
            for blob in blobs { entries.insertIfAbsent(blob.id, Entry(pack: number, blob)) }
        }
    }

    /// Index files read from storage one by one into a fresh index, which then replaces the
    /// one in use (``MasterIndex/replaceLoaded(with:)``). Each file can be dropped once added, so
    /// that opening a large repository never holds every decoded file at once.
    public struct Loading: ~Copyable {
        fileprivate var state = State()

        public init() {}

        public mutating func add(_ file: IndexFile, name: ID) {
            state.stage(file)
            state.indexFiles.append(name)
        }
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds every pack of an index file that has been read from storage.
    func add(_ file: IndexFile, name: ID?) {
        state.withLock { s in
            s.stage(file)
            if let name { s.indexFiles.append(name) }
        }
    }

    /// Records a pack this process has just written; it is saved in the next index file.
    func addPending(pack: ID, blobs: [PackedBlob]) {
        state.withLock { s in
            s.insert(pack: pack, blobs: blobs)
            s.unsaved.append((pack, blobs))
            for blob in blobs { s.reserved.remove(blob.id) }
        }
    }

    /// Claims the right to save blob `id`: true if nobody has it or is writing it.
    public func reserve(_ id: ID) -> Bool {
        state.withLock { s in
            if s.entries.contains(id) { return false }
            return s.reserved.insert(id).inserted
        }
    }

    /// Whether the blob is in a pack that an index (or this process) knows.
    public func contains(_ id: ID) -> Bool {
        state.withLock { $0.entries.contains(id) }
    }

    /// Whether every blob is known; one lock for the whole list.
    public func containsAll(_ ids: [ID]) -> Bool {
        state.withLock { s in ids.allSatisfy { s.entries.contains($0) } }
    }

    /// Where the blob is, if known.
    public func lookup(_ id: ID) -> BlobLocation? {
        state.withLock { s in
            guard let e = s.entries.find(id) else { return nil }
            return BlobLocation(pack: s.packs[Int(e.pack)], blob: e.blob(id))
        }
    }

    /// Takes the packs not yet written to an index file.
    func takeUnsaved() -> [(id: ID, blobs: [PackedBlob])] {
        state.withLock { s in
            defer { s.unsaved = [] }
            return s.unsaved
        }
    }

    /// Gives back packs taken by ``takeUnsaved()`` whose index file could not be written.
    func returnUnsaved(_ packs: [(id: ID, blobs: [PackedBlob])]) {
        state.withLock { $0.unsaved = packs + $0.unsaved }
    }

    /// Forgets packs this process wrote that no index file names (a backup that failed and could
    /// not index them): nothing may deduplicate against them, since a prune may delete them.
    /// Packs already named by an index file are kept.
    func dropUnsaved(_ packs: Set<ID>) {
        guard !packs.isEmpty else { return }
        state.withLock { s in
            let dropped = Set(s.unsaved.map(\.id)).intersection(packs)
            guard !dropped.isEmpty else { return }
            s.unsaved.removeAll { dropped.contains($0.id) }
            s.entries.removeAll(inPacks: Set(dropped.compactMap { s.packNumbers[$0] }))
        }
    }

    /// Gives up the claims of ``reserve(_:)`` on blobs that will not be saved after all.
    func release(_ ids: some Sequence<ID>) {
        state.withLock { s in
            for id in ids { s.reserved.remove(id) }
        }
    }

    /// Replaces what was read from index files with `loading`, keeping the packs this process
    /// wrote and has not indexed yet (a backup still running beside the caller) and its
    /// reservations.
    func replaceLoaded(with loading: consuming Loading) {
        var fresh = loading.state
        state.withLock { s in
            for pack in s.unsaved { fresh.insert(pack: pack.id, blobs: pack.blobs) }
            fresh.unsaved = s.unsaved
            fresh.reserved = s.reserved
            swap(&s, &fresh)
        }
    }

    /// Packs written by this process that no index file names yet.
    var unsavedPackCount: Int { state.withLock { $0.unsaved.count } }

    /// Every pack any index names.
    public var packIDs: Set<ID> { state.withLock { Set($0.packs) } }

    /// The index files read.
    public var indexFileIDs: [ID] { state.withLock { $0.indexFiles } }

    /// Calls `body` with every known blob and its pack, under the index's lock: `body` must be
    /// quick and must not touch the index.
    public func forEachBlob(_ body: (ID, PackedBlob) -> Void) {
        state.withLock { s in
            s.entries.forEach { id, e in body(s.packs[Int(e.pack)], e.blob(id)) }
        }
    }

    /// Every known blob, grouped by pack.
    public func blobsByPack() -> [ID: [PackedBlob]] {
        state.withLock { s in
            var result: [ID: [PackedBlob]] = [:]
            s.entries.forEach { id, e in
                result[s.packs[Int(e.pack)], default: []].append(e.blob(id))
            }
            return result
        }
    }

    /// Forgets everything, before the index files are read again.
    func removeAll() {
        state.withLock { $0 = State() }
    }

    /// How many blobs are known.
    public var count: Int { state.withLock { $0.entries.count } }
}
