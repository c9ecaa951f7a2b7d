import Foundation

/// Where the master index keeps its blobs: one sorted array of fixed-size slots, found through a
/// directory of the top 16 bits of their ids' first word (``ID/w0``), plus a small hash table of
/// the blobs added since the array was last sorted.
///
/// At 10 GiB the benchmark's repository holds 1.2 million blobs. In a `[ID: Entry]` they took
/// 126 MB (2^21 buckets of 60 bytes once past 1.05 million), and growing it held the old table
/// beside the new one: opening that index peaked at 321 MiB and took 1.6 s. Here a blob takes a
/// 48-byte slot, and a bundle's place in its pack is kept once for all its members (``units``);
/// the array grows with `realloc`, which moves large blocks by remapping pages rather than
/// copying them; the index files are added one at a time and sorted once. Ids are keyed hashes, uniform in every bit, so the directory splits the array into
/// buckets of about n / 65,536 slots, and a lookup starts where the id's next bits place it in its
/// bucket (see ``findSorted(_:)``).
///
/// Not thread-safe: ``MasterIndex`` only touches it under its lock, and a fresh one is handed
/// to that lock whole (hence `@unchecked Sendable`).
final class BlobTable: @unchecked Sendable {
    /// What the index knows of one blob, beside its id.
    struct Entry {
        var pack: Int32
        var offset: UInt32
        var length: UInt32
        var rawLength: UInt32
        /// A bundle member's range in its bundle's plaintext; length 0 for a blob sealed alone.
        var memberOffset: UInt32
        var memberLength: UInt32
        var type: BlobType

        init(pack: Int32, _ blob: PackedBlob) {
            self.pack = pack
            offset = blob.offset
            length = blob.length
            rawLength = blob.rawLength
            memberOffset = blob.member?.offset ?? 0
            memberLength = blob.member?.length ?? 0
            type = blob.type
        }

        init(pack: Int32, type: BlobType, offset: UInt32, length: UInt32, rawLength: UInt32,
             memberOffset: UInt32, memberLength: UInt32) {
            self.pack = pack
            self.type = type
            self.offset = offset
            self.length = length
            self.rawLength = rawLength
            self.memberOffset = memberOffset
            self.memberLength = memberLength
        }

        func blob(_ id: ID) -> PackedBlob {
            PackedBlob(type: type, id: id, offset: offset, length: length, rawLength: rawLength,
                       member: memberLength > 0 ? BundleMember(offset: memberOffset, length: memberLength) : nil)
        }
    }

    /// A blob as the sorted array holds it: the id and 16 bytes. A blob sealed alone keeps its
    /// unit's offset, length and raw length (`a`, `b`, `c`); a bundle member keeps its bundle's
    /// number in ``units`` and its range in the bundle's plaintext. The 64 bytes a slot of id and
    /// ``Entry`` took were 18 MB more at 10 GiB, most of it the same bundle repeated per member.
    private struct Slot {
        var id: ID
        /// The pack's number times 4, plus 2 for a bundle member, plus the blob type's raw value.
        var packAndKind: UInt32
        var a: UInt32
        var b: UInt32
        var c: UInt32
    }

    /// Where a bundle lies in its pack: what its members' entries share.
    private struct Unit {
        var offset: UInt32
        var length: UInt32
        var rawLength: UInt32
    }

    /// Blobs added one by one (a backup's packs) are kept in `recent` until there are this many,
    /// then sorted into the array: a merge costs a pass over the array, so it is done rarely.
    /// At 2^16 the hash table reached 2^17 buckets of 60 bytes, 8 MB, and 12 MB while it grew:
    /// the largest part of a first backup's peak memory after the chunk buffers and the packs.
    /// At 2^15 it is half that; a 10 GiB first backup (1.2 million blobs) merges 37 times
    /// instead of 18, a pass over an array of up to 58 MB each, about 15 ms.
    static let recentLimit = 1 << 15

    private var slots: UnsafeMutablePointer<Slot>?
    private var capacity = 0
    /// Slots in use: `sorted` of them sorted and without repeats, then any added by ``stage(_:_:)``.
    private var used = 0
    private var sorted = 0
    /// `directory[b]` is the first sorted slot whose id's top 16 bits are `b` or more.
    private var directory: [Int32] = Array(repeating: 0, count: 65_537)
    private var recent: [ID: Entry] = [:]
    /// The bundles that slots name, in the order they were first staged. An index file lists a
    /// bundle's members one after another, so the last one staged is the only one looked for
    /// (``lastUnit``, keyed by pack number and offset); a bundle met again later (another index
    /// file naming the same pack) is kept twice, which costs 12 bytes and changes no answer.
    /// Blobs merged from ``recent`` come in hash order, so a merge looks its bundles up in
    /// ``mergingUnits`` (at most ``recentLimit`` of them), which exists only while it runs.
    private var units: [Unit] = []
    private var lastUnit: (key: UInt64, number: UInt32)?
    private var mergingUnits: [UInt64: UInt32]?

    init() {}

    deinit { free(slots) }

    /// How many distinct blobs are known (staged ones are sorted first).
    var count: Int {
        settle()
        return sorted + recent.count
    }

    /// Adds a blob read from an index file, unchecked: repeats are dropped when the table is
    /// next read. For loading thousands of index files without a lookup each.
    func stage(_ id: ID, _ entry: Entry) {
        if used == capacity { grow(to: max(1024, capacity + capacity / 2)) }
        (slots! + used).initialize(to: slot(id, entry))
        used += 1
    }

    /// Makes room for `more` staged blobs at once.
    func reserve(_ more: Int) {
        if used + more > capacity { grow(to: used + more) }
    }

    func find(_ id: ID) -> Entry? {
        settle()
        if !recent.isEmpty, let entry = recent[id] { return entry }
        return findSorted(id).map { entry(slots![$0]) }
    }

    func contains(_ id: ID) -> Bool {
        find(id) != nil
    }

    /// Adds a blob unless it is known already.
    func insertIfAbsent(_ id: ID, _ entry: Entry) {
        guard find(id) == nil else { return }
        recent[id] = entry
        if recent.count >= BlobTable.recentLimit { mergeRecent() }
    }

    /// Drops every blob stored in one of `packs` (pack numbers).
    func removeAll(inPacks packs: Set<Int32>) {
        settle()
        recent = recent.filter { !packs.contains($0.value.pack) }
        let numbers = Set(packs.map { UInt32($0) })
        var kept = 0
        for i in 0..<sorted where !numbers.contains(slots![i].packAndKind >> 2) {
            if kept != i { slots![kept] = slots![i] }
            kept += 1
        }
        used = kept
        sorted = kept
        rebuildDirectory()
        compactUnits()
    }

    /// Drops the bundles no slot names any more and renumbers the rest.
    private func compactUnits() {
        var renumbered: [UInt32: UInt32] = [:]
        var kept: [Unit] = []
        for i in 0..<used where slots![i].packAndKind & 2 != 0 {
            let old = slots![i].a
            if let new = renumbered[old] {
                slots![i].a = new
            } else {
                let new = UInt32(kept.count)
                kept.append(units[Int(old)])
                renumbered[old] = new
                slots![i].a = new
            }
        }
        units = kept
        lastUnit = nil
    }

    func forEach(_ body: (ID, Entry) -> Void) {
        settle()
        for i in 0..<sorted { body(slots![i].id, entry(slots![i])) }
        for (id, entry) in recent { body(id, entry) }
    }

    // MARK: - Slots

    private func slot(_ id: ID, _ entry: Entry) -> Slot {
        precondition(entry.pack >= 0 && entry.pack < 1 << 30, "pack number \(entry.pack) out of the index's range")
        let kind = UInt32(entry.type.rawValue)
        precondition(kind < 2, "a slot has one bit for the blob type")
        guard entry.memberLength > 0 else {
            return Slot(id: id, packAndKind: UInt32(entry.pack) << 2 | kind,
                        a: entry.offset, b: entry.length, c: entry.rawLength)
        }
        return Slot(id: id, packAndKind: UInt32(entry.pack) << 2 | 2 | kind,
                    a: unitNumber(entry), b: entry.memberOffset, c: entry.memberLength)
    }

    /// The number in ``units`` of a bundle member's bundle, added if it is not found. A unit
    /// found at the same place with other lengths (only a damaged index could say so) is not
    /// shared: each entry reads back as its index file gave it.
    private func unitNumber(_ entry: Entry) -> UInt32 {
        let key = UInt64(UInt32(entry.pack)) << 32 | UInt64(entry.offset)
        func matches(_ number: UInt32) -> Bool {
            units[Int(number)].length == entry.length && units[Int(number)].rawLength == entry.rawLength
        }
        if let last = lastUnit, last.key == key, matches(last.number) { return last.number }
        let number: UInt32
        if let found = mergingUnits?[key], matches(found) {
            number = found
        } else {
            number = UInt32(units.count)
            units.append(Unit(offset: entry.offset, length: entry.length, rawLength: entry.rawLength))
            mergingUnits?[key] = number
        }
        lastUnit = (key, number)
        return number
    }

    private func entry(_ slot: Slot) -> Entry {
        let pack = Int32(slot.packAndKind >> 2)
        let type = BlobType(rawValue: UInt8(slot.packAndKind & 1))!
        guard slot.packAndKind & 2 != 0 else {
            return Entry(pack: pack, type: type, offset: slot.a, length: slot.b, rawLength: slot.c,
                         memberOffset: 0, memberLength: 0)
        }
        let unit = units[Int(slot.a)]
        return Entry(pack: pack, type: type, offset: unit.offset, length: unit.length, rawLength: unit.rawLength,
                     memberOffset: slot.b, memberLength: slot.c)
    }

    // MARK: - Keeping it sorted

    private func grow(to wanted: Int) {
        guard let grown = realloc(slots, wanted * MemoryLayout<Slot>.stride) else {
            fatalError("Out of memory growing the repository index to \(wanted) blobs")
        }
        slots = grown.assumingMemoryBound(to: Slot.self)
        capacity = wanted
    }

    /// Sorts what was staged into the sorted part and drops repeated ids (the first kept).
    private func settle() {
        guard used > sorted else { return }
        let buffer = UnsafeMutableBufferPointer(start: slots!, count: used)
        if sorted == 0 {
            BlobTable.sortInPlace(buffer)
        } else {
            // The staged tail is sorted alone, then merged with the sorted part from the back
            // (the tail is copied aside: the merge writes where the tail was).
            var staged = UnsafeMutableBufferPointer(rebasing: buffer[sorted...])
            staged.sort { BlobTable.less($0.id, $1.id) }
            let tail = Array(buffer[sorted...])
            var a = sorted - 1, b = tail.count - 1, out = used - 1
            while b >= 0 {
                if a >= 0 && BlobTable.less(tail[b].id, buffer[a].id) {
                    buffer[out] = buffer[a]
                    a -= 1
                } else {
                    buffer[out] = tail[b]
                    b -= 1
                }
                out -= 1
            }
        }
        var kept = 1
        for i in 1..<used where buffer[i].id != buffer[kept - 1].id {
            if kept != i { buffer[kept] = buffer[i] }
            kept += 1
        }
        used = kept
        sorted = kept
        rebuildDirectory()
        // An index file added after a backup's blobs (another host's, read by verify) may name
        // some of them again: each blob is counted once, where the table has it.
        if !recent.isEmpty { recent = recent.filter { findSorted($0.key) == nil } }
    }

    private func mergeRecent() {
        settle()
        reserve(recent.count)
        mergingUnits = [:]
        for (id, entry) in recent { stage(id, entry) }
        mergingUnits = nil
        recent = [:]
        settle()
    }

    /// Sorts slots without a second buffer (the standard library's sort borrows up to half the
    /// array: 36 MB more at a million blobs, on top of the table itself). The ids are uniform,
    /// so one in-place pass by their top 16 bits (American flag sort: each slot is swapped
    /// straight into its bucket) leaves buckets of about n / 65,536 slots, then sorted by
    /// insertion.
    private static func sortInPlace(_ buffer: UnsafeMutableBufferPointer<Slot>) {
        var starts = [Int](repeating: 0, count: 65_537)
        for slot in buffer { starts[bucket(slot.id) + 1] += 1 }
        for b in 0..<65_536 { starts[b + 1] += starts[b] }
        var next = starts
        for b in 0..<65_536 {
            while next[b] < starts[b + 1] {
                let target = bucket(buffer[next[b]].id)
                if target == b {
                    next[b] += 1
                } else {
                    buffer.swapAt(next[b], next[target])
                    next[target] += 1
                }
            }
        }
        for b in 0..<65_536 where starts[b + 1] - starts[b] > 1 {
            for i in (starts[b] + 1)..<starts[b + 1] {
                let moving = buffer[i]
                var j = i
                while j > starts[b] && less(moving.id, buffer[j - 1].id) {
                    buffer[j] = buffer[j - 1]
                    j -= 1
                }
                buffer[j] = moving
            }
        }
    }

    private func rebuildDirectory() {
        var slot = 0
        for bucket in 0..<65_536 {
            while slot < sorted && BlobTable.bucket(slots![slot].id) < bucket { slot += 1 }
            directory[bucket] = Int32(slot)
        }
        directory[65_536] = Int32(sorted)
    }

    /// The slot of `id` among the sorted ones.
    ///
    /// Ids are uniform, so the bits after a bucket's 16 say where in the bucket an id sits: the
    /// search starts there and walks to it, a slot or two away, where a binary search touched
    /// four or five cache lines of a bucket (a no-change backup looks up every chunk of every
    /// unchanged file, a million at 10 GiB).
    private func findSorted(_ id: ID) -> Int? {
        guard sorted > 0 else { return nil }
        let bucket = BlobTable.bucket(id)
        let low = Int(directory[bucket]), high = Int(directory[bucket + 1])
        guard low < high else { return nil }
        let fraction = (id.w0 << 16) >> 32
        var i = low + Int((fraction * UInt64(high - low)) >> 32)
        while i < high - 1, BlobTable.less(slots![i].id, id) { i += 1 }
        while i > low, BlobTable.less(id, slots![i].id) { i -= 1 }
        return slots![i].id == id ? i : nil
    }

    /// The order of the table: the ids' words as numbers, the first most significant. Any total
    /// order would do; this one agrees with ``bucket(_:)``, which takes the top bits of `w0`.
    private static func less(_ a: ID, _ b: ID) -> Bool {
        if a.w0 != b.w0 { return a.w0 < b.w0 }
        if a.w1 != b.w1 { return a.w1 < b.w1 }
        if a.w2 != b.w2 { return a.w2 < b.w2 }
        return a.w3 < b.w3
    }

    private static func bucket(_ id: ID) -> Int {
        Int(truncatingIfNeeded: id.w0 >> 48)
    }
}
