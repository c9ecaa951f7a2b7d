import Foundation

/// Where one blob sits inside a pack.
///
/// A blob is stored either sealed on its own or as a member of a *bundle*: the plaintexts of
/// several small data blobs (a database's page chunks, say) concatenated, compressed and sealed
/// together. Each member keeps its own id and is found by its bundle's place in the pack plus its
/// place in the bundle's plaintext.
public struct PackedBlob: Sendable, Equatable {
    public var type: BlobType
    public var id: ID
    /// Offset in the pack of the sealed unit holding the blob (the blob, or its bundle).
    public var offset: UInt32
    /// Stored (encrypted) length of that unit.
    public var length: UInt32
    /// The unit's plaintext length before compression, or 0 when it is stored uncompressed.
    public var rawLength: UInt32
    /// Where the blob lies in its bundle's plaintext; nil for a blob sealed on its own.
    public var member: BundleMember?

    public init(type: BlobType, id: ID, offset: UInt32, length: UInt32, rawLength: UInt32, member: BundleMember? = nil) {
        self.type = type
        self.id = id
        self.offset = offset
        self.length = length
        self.rawLength = rawLength
        self.member = member
    }

    /// The length of the unit's plaintext (the blob's own, or its whole bundle's).
    public var unitPlaintextLength: Int {
        rawLength > 0 ? Int(rawLength) : Int(length) - MasterKey.sealOverhead
    }

    /// The length of the plaintext the blob holds.
    public var plaintextLength: Int {
        member.map { Int($0.length) } ?? unitPlaintextLength
    }

    /// The stored bytes the blob accounts for: its unit's length, or for a bundle member the
    /// member's share of it (for reports and thresholds; shares need not add up exactly).
    public var storedShare: Int {
        guard let member else { return Int(length) }
        let whole = max(1, unitPlaintextLength)
        return Int((UInt64(length) * UInt64(member.length) + UInt64(whole) / 2) / UInt64(whole))
    }
}

/// A bundle member's byte range in the bundle's plaintext.
public struct BundleMember: Sendable, Equatable, Hashable {
    public var offset: UInt32
    public var length: UInt32

    public init(offset: UInt32, length: UInt32) {
        self.offset = offset
        self.length = length
    }
}

/// The layout of a pack: `unit… header header_length`, where a unit is one sealed blob or one
/// sealed bundle.
///
/// The header is sealed too, and followed by its sealed length as 4 little-endian bytes. It lists
/// the units in order; offsets follow from the lengths. A blob sealed on its own takes a 41-byte
/// entry: type (1 byte: 0 data, 1 tree), id (32), stored length (4, little-endian), raw length
/// (4). A bundle takes a 13-byte entry, the marker 2, stored length (4), raw length (4) and member
/// count (4), followed by 36 bytes per member: its id (32) and plaintext length (4). Members are
/// data blobs; their plaintexts, in order, make up the bundle's plaintext.
enum PackFormat {
    static let entrySize = 1 + 32 + 4 + 4
    /// The type byte that starts a bundle entry (never a ``BlobType``).
    static let bundleMarker: UInt8 = 2
    static let bundleEntrySize = 1 + 4 + 4 + 4
    static let memberEntrySize = 32 + 4

    /// The units of a pack, in order: runs of bundle members that share a unit are grouped.
    static func units(_ blobs: [PackedBlob]) -> [ArraySlice<PackedBlob>] {
        var units: [ArraySlice<PackedBlob>] = []
        var i = blobs.startIndex
        while i < blobs.endIndex {
            var j = i + 1
            if blobs[i].member != nil {
                while j < blobs.endIndex, blobs[j].member != nil, blobs[j].offset == blobs[i].offset { j += 1 }
            }
            units.append(blobs[i..<j])
            i = j
        }
        return units
    }

    /// The header plaintext's length for these blobs, in any order.
    static func headerLength(_ blobs: [PackedBlob]) -> Int {
        var singles = 0
        var members = 0
        var bundles: Set<UInt32> = []
        for blob in blobs {
            if blob.member == nil {
                singles += 1
            } else {
                members += 1
                bundles.insert(blob.offset)
            }
        }
        return singles * entrySize + bundles.count * bundleEntrySize + members * memberEntrySize
    }

    /// The bytes of the units, each counted once, for these blobs in any order.
    static func dataLength(_ blobs: [PackedBlob]) -> Int {
        var total = 0
        var bundles: Set<UInt32> = []
        for blob in blobs where blob.member == nil || bundles.insert(blob.offset).inserted {
            total += Int(blob.length)
        }
        return total
    }

    /// A pack's size as a complete list of its blobs implies (docs/repository-format.md §6.1).
    static func packSize(_ blobs: [PackedBlob]) -> Int {
        dataLength(blobs) + headerLength(blobs) + MasterKey.sealOverhead + 4
    }

    static func encodeHeader(_ blobs: [PackedBlob]) -> Data {
        var out = Data(capacity: headerLength(blobs))
        for unit in units(blobs) { appendEntry(unit, to: &out, withOffset: false) }
        return out
    }

    /// Appends one unit's entry: a blob's (type, id, [offset,] length, raw length) or a bundle's
    /// (marker, [offset,] length, raw length, count, then each member's id and length). Pack
    /// headers leave the offset out (it follows from the lengths); index files write it.
    static func appendEntry(_ unit: ArraySlice<PackedBlob>, to out: inout Data, withOffset: Bool) {
        let first = unit.first!
        if first.member == nil {
            out.append(first.type.rawValue)
            out.append(contentsOf: first.id.bytes)
        } else {
            out.append(bundleMarker)
        }
        if withOffset { out.appendLittleEndian(first.offset) }
        out.appendLittleEndian(first.length)
        out.appendLittleEndian(first.rawLength)
        guard first.member != nil else { return }
        out.appendLittleEndian(UInt32(unit.count))
        for member in unit {
            out.append(contentsOf: member.id.bytes)
            out.appendLittleEndian(member.member!.length)
        }
    }

    static func decodeHeader(_ data: Data, pack: ID) throws -> [PackedBlob] {
        var blobs: [PackedBlob] = []
        var offset: UInt32 = 0
        var reader = ByteReader(data)
        func malformed(_ what: String) -> BunkerError {
            BunkerError(.corruptObject, "Pack \(pack.short) has a malformed header: \(what).")
        }
        while !reader.isAtEnd {
            let kind = try reader.byte()
            if kind == bundleMarker {
                let length = try reader.uint32()
                let raw = try reader.uint32()
                let count = try reader.uint32()
                guard count > 0, length > MasterKey.sealOverhead else { throw malformed("an empty bundle") }
                var inner: UInt32 = 0
                for _ in 0..<count {
                    let id = ID(bytes: try reader.bytes(32))
                    let memberLength = try reader.uint32()
                    guard memberLength > 0, inner.addingReportingOverflow(memberLength).overflow == false else {
                        throw malformed("a bundle member of impossible length")
                    }
                    blobs.append(PackedBlob(type: .data, id: id, offset: offset, length: length, rawLength: raw,
                                            member: BundleMember(offset: inner, length: memberLength)))
                    inner += memberLength
                }
                let plaintext = raw > 0 ? Int(raw) : Int(length) - MasterKey.sealOverhead
                guard Int(inner) == plaintext else { throw malformed("a bundle whose members do not fill it") }
                offset = try advance(offset, by: length, pack: pack)
            } else {
                guard let type = BlobType(rawValue: kind) else {
                    throw BunkerError(.corruptObject, "Pack \(pack.short) names an unknown blob type.")
                }
                let id = ID(bytes: try reader.bytes(32))
                let length = try reader.uint32()
                let raw = try reader.uint32()
                blobs.append(PackedBlob(type: type, id: id, offset: offset, length: length, rawLength: raw))
                offset = try advance(offset, by: length, pack: pack)
            }
        }
        return blobs
    }

    private static func advance(_ offset: UInt32, by length: UInt32, pack: ID) throws -> UInt32 {
        let (next, overflow) = offset.addingReportingOverflow(length)
        guard !overflow else {
            throw BunkerError(.corruptObject, "Pack \(pack.short)'s header describes more than 4 GiB of blobs.")
        }
        return next
    }

    /// Reads and authenticates a whole pack's header from the pack's bytes.
    static func readHeader(of pack: Data, id: ID, key: MasterKey) throws -> [PackedBlob] {
        try readHeader(tail: pack, packSize: pack.count, id: id, key: key)
    }

    /// Reads and authenticates a pack's header from the pack's last bytes (`tail`, which must hold
    /// the sealed header and its length) and the pack's size: its units, as the header lists them,
    /// must fill the pack up to the header.
    static func readHeader(tail: Data, packSize: Int, id: ID, key: MasterKey) throws -> [PackedBlob] {
        guard tail.count <= packSize, tail.count >= 4 + MasterKey.sealOverhead else {
            throw BunkerError(.corruptObject, "Pack \(id.short) is too short to hold a header (truncated?).")
        }
        let lengthStart = tail.startIndex + tail.count - 4
        let headerLength = Int(tail[lengthStart..<(lengthStart + 4)].littleEndianUInt32)
        guard headerLength >= MasterKey.sealOverhead, headerLength <= tail.count - 4 else {
            throw BunkerError(.corruptObject, "Pack \(id.short) has an impossible header length (truncated?).")
        }
        let sealed = tail[(lengthStart - headerLength)..<lengthStart]
        let blobs = try decodeHeader(try key.open(sealed), pack: id)
        guard dataLength(blobs) == packSize - 4 - headerLength else {
            throw BunkerError(.corruptObject, "Pack \(id.short)'s header does not match its size.")
        }
        return blobs
    }
}

/// Accumulates sealed blobs into packs and writes each full pack to storage.
///
/// Packs are written before the index that names them; a pack that reaches storage but not an
/// index (the process died in between) is harmless and is removed by prune.
///
/// With `parallelWrites` 1 (a local directory) a full pack is written by the caller that filled
/// it, one at a time: a slow disk holds the backup back rather than piling packs up in memory.
/// With more (an object store, where one upload waits on the network and the server far more
/// than on this machine) up to that many packs are uploaded at once, each in a task of its own,
/// while the backup goes on filling the next; the first failure is thrown by the next ``add(_:)``
/// or by ``flush()``, which waits for every upload. One pack in flight at a time made an S3 backup
/// wait for each 8 MiB upload in turn, with the server's cores idle between them.
actor Packer {
    private let storage: any Storage
    private let key: MasterKey
    private let targetSize: Int
    private let onPackSaved: @Sendable (ID, [PackedBlob], Int) async throws -> Void
    private var buffer = Data()
    private var blobs: [PackedBlob] = []
    private let writing = AsyncLimiter(limit: 1)
    private let parallelWrites: Int
    /// Uploads in flight (with `parallelWrites` above 1), by a number of their own.
    private var uploads: [Int: Task<Void, Never>] = [:]
    private var uploadsStarted = 0
    /// The first upload that failed, thrown by the next `add` or `flush`.
    private var failure: (any Error)?

    init(storage: any Storage, key: MasterKey, targetSize: Int, parallelWrites: Int = 1,
         onPackSaved: @escaping @Sendable (ID, [PackedBlob], Int) async throws -> Void) {
        self.storage = storage
        self.key = key
        self.targetSize = targetSize
        self.parallelWrites = max(1, parallelWrites)
        self.onPackSaved = onPackSaved
        buffer.reserveCapacity(targetSize + Packer.headroom)
    }

    /// Room beyond the target size for the unit that fills a pack (at most a maximum-size chunk,
    /// sealed), so that the buffer never grows by copying. Only the bytes written are touched.
    static let headroom = 5 << 20

    /// A sealed unit on its way into a pack: one blob, or a bundle of data blobs.
    struct Entry: Sendable {
        enum Content: Sendable {
            case blob(BlobType, ID)
            /// Member ids and plaintext lengths, in the order of the bundle's plaintext.
            case bundle([(id: ID, length: Int)])
        }

        var content: Content
        var sealed: Data
        /// Plaintext length if compressed, else 0.
        var rawLength: Int

        init(type: BlobType, id: ID, sealed: Data, rawLength: Int) {
            self.content = .blob(type, id)
            self.sealed = sealed
            self.rawLength = rawLength
        }

        init(bundle members: [(id: ID, length: Int)], sealed: Data, rawLength: Int) {
            self.content = .bundle(members)
            self.sealed = sealed
            self.rawLength = rawLength
        }
    }

    /// Adds sealed units; writes the pack whenever it is full.
    func add(_ entries: [Entry]) async throws {
        if let failure { throw failure }
        for entry in entries {
            // A full pack waiting for the one before it to be written takes nothing more.
            if buffer.count >= targetSize { try await writeCurrent() }
            let offset = UInt32(buffer.count)
            let length = UInt32(entry.sealed.count)
            switch entry.content {
            case .blob(let type, let id):
                blobs.append(PackedBlob(type: type, id: id, offset: offset, length: length, rawLength: UInt32(entry.rawLength)))
            case .bundle(let members):
                var inner: UInt32 = 0
                for member in members {
                    blobs.append(PackedBlob(type: .data, id: member.id, offset: offset, length: length, rawLength: UInt32(entry.rawLength),
                                            member: BundleMember(offset: inner, length: UInt32(member.length))))
                    inner += UInt32(member.length)
                }
            }
            buffer.append(entry.sealed)
            if buffer.count >= targetSize {
                try await writeCurrent()
            }
        }
    }

    /// Writes the pack in progress, if any, and waits for every pack still being written.
    func flush() async throws {
        if !blobs.isEmpty { try await writeCurrent() }
        await drain()
        if let failure { throw failure }
    }

    /// After a failure elsewhere: stops the uploads still running (a pack cut short is never
    /// indexed; prune removes it) and waits for them, so that none reaches the index after the
    /// session has settled it.
    func abandon() async {
        for upload in uploads.values { upload.cancel() }
        await drain()
    }

    private func drain() async {
        while let upload = uploads.values.first { await upload.value }
    }

    /// Writes the pack in progress: at once (see the type's comment), or in an upload of its own
    /// once fewer than `parallelWrites` are in flight.
    private func writeCurrent() async throws {
        guard parallelWrites > 1 else {
            try await writing.withPermit {
                // Another caller may have written it while this one waited.
                guard !blobs.isEmpty else { return }
                let (pack, entries) = try takePack()
                if let error = await Self.write(pack, entries, to: storage, then: onPackSaved) { throw error }
            }
            return
        }
        while uploads.count >= parallelWrites, let upload = uploads.values.first { await upload.value }
        if let failure { throw failure }
        // Another caller may have written it while this one waited.
        guard !blobs.isEmpty else { return }
        let (pack, entries) = try takePack()
        let number = uploadsStarted
        uploadsStarted += 1
        uploads[number] = Task { [storage, onPackSaved] in
            let failed = await Self.write(pack, entries, to: storage, then: onPackSaved)
            finished(number, failed)
        }
    }

    /// Names a pack by its SHA-256, stores it and reports it; returns what failed. Not isolated
    /// to the packer: hashing 8 MiB and the upload's own hashing run beside the backup's work.
    private nonisolated static func write(
        _ pack: Data, _ entries: [PackedBlob], to storage: any Storage,
        then onPackSaved: @Sendable (ID, [PackedBlob], Int) async throws -> Void
    ) async -> (any Error)? {
        do {
            try Task.checkCancellation()
            let id = ID.sha256(of: pack)
            try await storage.save(ObjectHandle(.pack, id), data: pack)
            try await onPackSaved(id, entries, pack.count)
            return nil
        } catch {
            return error
        }
    }

    private func finished(_ number: Int, _ error: (any Error)?) {
        uploads[number] = nil
        if let error, failure == nil { failure = error }
    }

    /// Seals the header of the pack in progress and takes it, leaving an empty one.
    private func takePack() throws -> (Data, [PackedBlob]) {
        var pack = buffer
        let entries = blobs
        buffer = Data()
        buffer.reserveCapacity(targetSize + Packer.headroom)
        blobs = []
        let header = try key.seal(PackFormat.encodeHeader(entries))
        pack.append(header)
        pack.appendLittleEndian(UInt32(header.count))
        return (pack, entries)
    }
}

extension Data {
    mutating func appendLittleEndian(_ value: UInt32) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    var littleEndianUInt32: UInt32 {
        var value: UInt32 = 0
        for (i, b) in self.prefix(4).enumerated() { value |= UInt32(b) << (8 * UInt32(i)) }
        return value
    }
}

/// Reads fixed-size fields from a byte buffer, failing cleanly at its end.
struct ByteReader {
    private let data: Data
    private var position: Int

    init(_ data: Data) {
        self.data = data
        self.position = data.startIndex
    }

    var isAtEnd: Bool { position >= data.endIndex }

    /// Bytes not read yet.
    var remaining: Int { data.endIndex - position }

    mutating func bytes(_ count: Int) throws -> Data {
        guard data.endIndex - position >= count else {
            throw BunkerError(.corruptObject, "Unexpected end of data.")
        }
        defer { position += count }
        return data[position..<(position + count)]
    }

    mutating func byte() throws -> UInt8 { try bytes(1).first! }

    mutating func uint32() throws -> UInt32 { try bytes(4).littleEndianUInt32 }
}
