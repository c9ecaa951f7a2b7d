import Crypto
import Foundation
import Synchronization

/// Which packs a data check reads.
public enum DataSubset: Sendable, Equatable, CustomStringConvertible {
    /// Part `n` of `m` (1-based): packs whose first id byte modulo `m` is `n − 1`, so running
    /// 1/m … m/m over m days reads everything once.
    case part(Int, of: Int)
    /// A random share of the packs, in percent.
    case percent(Double)

    /// Parses `1/5` or `10%`.
    public init(parsing text: String) throws {
        if text.hasSuffix("%"), let value = Double(text.dropLast()), value > 0, value <= 100 {
            self = .percent(value)
            return
        }
        let parts = text.split(separator: "/")
        if parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]), m >= 1, n >= 1, n <= m {
            self = .part(n, of: m)
            return
        }
        throw BunkerError(.invalidArgument, "\"\(text)\" is not a subset; write n/m (e.g. 1/5) or a percentage (e.g. 10%).")
    }

    func includes(_ pack: ID) -> Bool {
        switch self {
        case .part(let n, let m): return Int(pack.bytes[0]) % m == n - 1
        case .percent(let p): return Double.random(in: 0..<100) < p
        }
    }

    public var description: String {
        switch self {
        case .part(let n, let m): return "\(n)/\(m)"
        case .percent(let p): return "\(p)%"
        }
    }
}

/// A file that a damaged or missing object makes unrestorable.
public struct AffectedFile: Sendable, Codable, Hashable {
    public var snapshot: String
    public var path: String

    public init(snapshot: String, path: String) {
        self.snapshot = snapshot
        self.path = path
    }
}

/// One problem a check found.
public struct CheckIssue: Sendable, Codable {
    /// `missing_pack`, `damaged_pack`, `damaged_blob`, `missing_blob`, `damaged_index`,
    /// `damaged_snapshot`, `damaged_tree`, `damaged_hold`, `lock_not_enforced`.
    public var kind: String
    /// The stored object concerned (`data/<id>`, `index/<id>`, `snapshots/<id>`).
    public var object: String
    public var message: String
    /// Which snapshots and files it affects.
    public var affected: [AffectedFile] = []
}

/// What a check found.
public struct CheckReport: Sendable, Codable {
    public var snapshots = 0
    public var indexFiles = 0
    public var packs = 0
    public var blobs = 0
    public var packsRead = 0
    public var bytesRead: UInt64 = 0
    public var subset: String?
    public var errors: [CheckIssue] = []
    public var warnings: [String] = []
    /// What the object-lock probe found, on a repository under object lock.
    public var objectLock: ImmutabilityProbe?
    /// Each source's archived WAL: ranges per timeline, gaps, lag.
    public var wal: [WalArchiveSummary] = []
    /// WAL objects read and authenticated (with read-data).
    public var walObjectsRead = 0

    /// No errors (warnings are allowed).
    public var ok: Bool { errors.isEmpty }

    enum CodingKeys: String, CodingKey {
        case snapshots, packs, blobs, subset, errors, warnings, ok
        case indexFiles = "index_files"
        case packsRead = "packs_read"
        case bytesRead = "bytes_read"
        case objectLock = "object_lock"
        case wal
        case walObjectsRead = "wal_objects_read"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(snapshots, forKey: .snapshots)
        try c.encode(indexFiles, forKey: .indexFiles)
        try c.encode(packs, forKey: .packs)
        try c.encode(blobs, forKey: .blobs)
        try c.encode(packsRead, forKey: .packsRead)
        try c.encode(bytesRead, forKey: .bytesRead)
        try c.encodeIfPresent(subset, forKey: .subset)
        try c.encodeIfPresent(objectLock, forKey: .objectLock)
        try c.encode(wal, forKey: .wal)
        try c.encode(walObjectsRead, forKey: .walObjectsRead)
        try c.encode(errors, forKey: .errors)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(ok, forKey: .ok)
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        snapshots = try c.decode(Int.self, forKey: .snapshots)
        indexFiles = try c.decode(Int.self, forKey: .indexFiles)
        packs = try c.decode(Int.self, forKey: .packs)
        blobs = try c.decode(Int.self, forKey: .blobs)
        packsRead = try c.decode(Int.self, forKey: .packsRead)
        bytesRead = try c.decode(UInt64.self, forKey: .bytesRead)
        subset = try c.decodeIfPresent(String.self, forKey: .subset)
        objectLock = try c.decodeIfPresent(ImmutabilityProbe.self, forKey: .objectLock)
        wal = try c.decodeIfPresent([WalArchiveSummary].self, forKey: .wal) ?? []
        walObjectsRead = try c.decodeIfPresent(Int.self, forKey: .walObjectsRead) ?? 0
        errors = try c.decode([CheckIssue].self, forKey: .errors)
        warnings = try c.decode([String].self, forKey: .warnings)
    }
}

/// Checks a repository: structure always, data on request. Open the repository without loading
/// its index (`loadIndex: false`) so that a damaged index file is reported instead of failing.
///
/// 1. Every index file decrypts; every pack an index names exists with the size the index implies.
/// 2. With `readData`, every selected pack is read whole: its SHA-256 must equal its name, its
///    header must authenticate and agree with the index, and every blob must decrypt, decompress
///    and hash to its id.
/// 3. Every snapshot decrypts, and its trees are walked: every tree and chunk must be indexed.
///    Files that use a damaged or missing blob are listed under the issue that damaged them.
/// Packs no index names (left by an interrupted backup) are warnings: prune removes them.
public struct Checker: Sendable {
    let repository: Repository
    private let progress: OperationProgress?

    public init(repository: Repository, progress: OperationProgress? = nil) {
        self.repository = repository
        self.progress = progress
    }

    /// What reading one pack found.
    private struct PackReading: Sendable {
        var bytes = 0
        var damaged: [PackedBlob] = []
        var issue: CheckIssue?
    }

    /// Reads a whole pack and checks its hash, header and every blob in `blobs`.
    ///
    /// With `complete`, `blobs` is everything the index says the pack holds and the header must
    /// list exactly those; otherwise the header must list at least them.
    ///
    /// The hash is needed even when every unit authenticates: a unit sealed again (another nonce,
    /// the same plaintext) or a pack holding the same blobs copied over another one passes every
    /// other check, yet breaks the rule that a pack is named by its SHA-256, which a restore's
    /// check and `bunker copy` rely on.
    private func read(pack: ID, blobs: [PackedBlob], complete: Bool = true) async -> PackReading {
        let object = "data/\(pack.hex)"
        var reading = PackReading()
        progress?.update { $0.currentPath = object }
        // In pack order, so that each bundle is opened once for all its members.
        let inPackOrder = blobs.sorted(by: { ($0.offset, $0.member?.offset ?? 0) < ($1.offset, $1.member?.offset ?? 0) })
        if complete, repository.storage.capability(ConcurrencyLimitedStorage.self) == nil,
           let size = await readWholeInRuns(pack: pack, blobs: inPackOrder) {
            reading.bytes = size
            progress?.update {
                $0.filesDone += 1
                $0.bytesDone += UInt64(size)
            }
            return reading
        }
        let data: Data
        do {
            data = try await repository.storage.load(ObjectHandle(.pack, pack))
        } catch {
            reading.damaged = blobs
            reading.issue = CheckIssue(kind: "damaged_pack", object: object, message: "Pack \(object) cannot be read: \(error)")
            return reading
        }
        reading.bytes = data.count
        progress?.update {
            $0.filesDone += 1
            $0.bytesDone += UInt64(data.count)
        }
        let hashOK = ID.sha256(of: data) == pack
        let decompressor = ZstdDecompressor()
        var detail: [String] = []
        do {
            let header = try PackFormat.readHeader(of: data, id: pack, key: repository.key)
            if complete ? header.map(\.id) != blobs.map(\.id) : !Self.header(header, lists: blobs) {
                detail.append("its header disagrees with the index")
            }
            var opened: (offset: UInt32, plaintext: Data?)?
            for blob in inPackOrder {
                let start = data.startIndex + Int(blob.offset)
                guard Int(blob.offset) + Int(blob.length) <= data.count else {
                    reading.damaged.append(blob)
                    continue
                }
                if opened?.offset != blob.offset {
                    let sealed = data[start..<(start + Int(blob.length))]
                    opened = (blob.offset, try? repository.openUnit(sealed, blob, pack: pack, decompressor: decompressor))
                }
                guard let unit = opened?.plaintext, (try? repository.extractBlob(blob, from: unit, pack: pack)) != nil else {
                    reading.damaged.append(blob)
                    continue
                }
            }
        } catch {
            detail.append("its header is damaged")
            reading.damaged = blobs
        }
        let damaged = reading.damaged
        if !damaged.isEmpty {
            detail.append("\(damaged.count) of its \(blobs.count) blobs fail authentication (\(damaged.prefix(3).map(\.id.short).joined(separator: ", "))\(damaged.count > 3 ? ", …" : ""))")
        }
        if !hashOK {
            detail.insert("its SHA-256 does not match its name", at: 0)
        }
        if !detail.isEmpty {
            reading.issue = CheckIssue(kind: "damaged_pack", object: object, message: "Pack \(object) is damaged: \(detail.joined(separator: "; ")).")
        }
        return reading
    }

    /// Checks a pack of a local repository that the index lists whole (`blobs`, in pack order)
    /// without holding all of it: the header from the pack's end, then the units in runs of about
    /// ``runBytes``, each hashed into the pack's SHA-256 and let go of once checked. A whole 8 MiB
    /// pack for each of the two packs being checked was a quarter of `verify --read-data`'s peak
    /// memory. Returns the pack's size when the header agrees with the index entry for entry (so
    /// that the runs and the header tile the pack), every unit authenticates, decompresses and
    /// holds blobs that hash to their ids, and the pack's SHA-256 is its name. Returns nil when
    /// anything is amiss, and the caller reads the pack whole and reports what it finds.
    ///
    /// Only for a local directory: from an object store each run would be a request of its own.
    private func readWholeInRuns(pack: ID, blobs: [PackedBlob]) async -> Int? {
        let handle = ObjectHandle(.pack, pack)
        let size = PackFormat.packSize(blobs)
        let tailLength = PackFormat.headerLength(blobs) + MasterKey.sealOverhead + 4
        guard let tail = try? await repository.storage.load(handle, range: (size - tailLength)..<size),
              let header = try? PackFormat.readHeader(tail: tail, packSize: size, id: pack, key: repository.key),
              header == blobs else { return nil }
        let decompressor = ZstdDecompressor()
        var hash = PackHashing(repository: repository, pack: pack)
        var units = PackFormat.units(blobs)[...]
        while let first = units.first {
            // The next run: whole units from `first` on, up to about runBytes.
            let start = Int(first.first!.offset)
            var end = start
            var run = 0
            while run < units.count, end == start || end - start + Int(units[units.startIndex + run].first!.length) <= Self.runBytes {
                end += Int(units[units.startIndex + run].first!.length)
                run += 1
            }
            guard let data = try? await repository.storage.load(handle, range: start..<end) else { return nil }
            var hashed = data.startIndex
            for unit in units.prefix(run) {
                let head = unit.first!
                let from = data.startIndex + Int(head.offset) - start
                let sealed = data[from..<(from + Int(head.length))]
                // The units tile the run (the header agrees with the index), so `from` is
                // `hashed`; anything between them would be hashed too.
                guard from >= hashed, let plaintext = try? repository.openUnit(sealed, head, pack: pack, decompressor: decompressor) else { return nil }
                hash.add(data[hashed..<from])
                guard hash.add(unit: sealed, holding: unit, plaintext: plaintext) else { return nil }
                hashed = sealed.endIndex
            }
            hash.add(data[hashed...])
            units = units.dropFirst(run)
        }
        // The runs end where the tail begins (the header's lengths add up to it).
        hash.add(tail)
        guard hash.finalize() == pack else { return nil }
        return size
    }

    /// How much of a pack ``readWholeInRuns(pack:blobs:)`` loads at once (a unit larger than this
    /// is loaded on its own).
    public static let runBytes = 1 << 20

    private static func header(_ header: [PackedBlob], lists blobs: [PackedBlob]) -> Bool {
        var byID: [ID: PackedBlob] = [:]
        for entry in header { byID[entry.id] = entry }
        return blobs.allSatisfy { byID[$0.id] == $0 }
    }

    /// Reads packs two at a time (hashing, decryption and decompression keep both cores busy)
    /// and hands each result to `handle` in completion order. `blobs` gives a pack's blob list
    /// just before it is read, so that a caller need not hold every pack's list at once.
    private func read(_ packs: [ID], blobs: (ID) async throws -> [PackedBlob], complete: Bool, _ handle: (PackReading) -> Void) async throws {
        progress?.update {
            $0.filesTotal = packs.count
            $0.totalsKnown = true
        }
        try await withThrowingTaskGroup(of: PackReading.self) { group in
            var next = 0
            func launch() async throws {
                let pack = packs[next]
                next += 1
                let list = try await blobs(pack)
                group.addTask { await self.read(pack: pack, blobs: list, complete: complete) }
            }
            while next < min(2, packs.count) { try await launch() }
            while let reading = try await group.next() {
                // A verify only reads: it can stop between any two packs.
                try Task.checkCancellation()
                if next < packs.count { try await launch() }
                handle(reading)
            }
        }
    }

    /// Checks everything one snapshot needs, or only its root entries named in `roots`: every
    /// directory listing decrypts, every chunk is indexed, and every pack holding them is read
    /// whole, its SHA-256 compared with its name and each of their blobs authenticated.
    ///
    /// This is the check a restore runs before it touches live data.
    public func check(snapshot id: ID, roots: Set<String>? = nil) async throws -> CheckReport {
        var report = CheckReport()
        let snapshot = try await repository.loadSnapshot(id)
        report.snapshots = 1
        report.errors += Checker.recordIssues(in: snapshot, id: id)
        var byPack: [ID: [PackedBlob]] = [:]
        var users: [ID: Set<String>] = [:]
        var seen: Set<ID> = []
        func use(_ blob: ID, by path: String) -> Bool {
            guard let location = repository.index.lookup(blob) else { return false }
            if seen.insert(blob).inserted { byPack[location.pack, default: []].append(location.blob) }
            users[location.pack, default: []].insert(path)
            return true
        }
        try await repository.walkListings(from: [(id: snapshot.tree, path: "", isRoot: true)]) { item in
            guard use(item.id, by: item.path.isEmpty ? "/" : item.path) else {
                report.errors.append(CheckIssue(kind: "missing_blob", object: "tree \(item.id.hex)", message: "Directory listing \(item.id.short) is in no index.", affected: [AffectedFile(snapshot: id.hex, path: item.path.isEmpty ? "/" : item.path)]))
                return nil
            }
            return item.id
        } visit: { item, loaded in
            let (treeID, path, isRoot) = item
            let shown = path.isEmpty ? "/" : path
            let tree: Tree
            do {
                tree = try loaded.get()
            } catch {
                report.errors.append(CheckIssue(kind: "damaged_tree", object: "tree \(treeID.hex)", message: "Directory listing \(treeID.short) cannot be read: \(error)", affected: [AffectedFile(snapshot: id.hex, path: shown)]))
                return []
            }
            report.errors += Checker.nameIssues(in: tree, id: treeID, snapshot: id, path: shown)
            var under: [(id: ID, path: String, isRoot: Bool)] = []
            for node in tree.nodes where node.hasSafeName {
                if isRoot, let roots, !roots.contains(node.name) { continue }
                let child = path + "/" + node.name
                switch node.type {
                case .directory:
                    if let sub = node.subtree { under.append((sub, child, false)) }
                case .file:
                    var missing = false
                    for blob in node.content ?? [] where !use(blob, by: child) { missing = true }
                    if missing {
                        report.errors.append(CheckIssue(kind: "missing_blob", object: "file content", message: "Chunks of \(child) are in no index.", affected: [AffectedFile(snapshot: id.hex, path: child)]))
                    }
                case .symlink, .fifo, .socket, .characterDevice, .blockDevice:
                    break
                }
            }
            return under
        }
        report.packs = byPack.count
        report.blobs = seen.count
        let packs = byPack.keys.sorted()
        try await read(packs, blobs: { byPack[$0, default: []].sorted { $0.offset < $1.offset } }, complete: false) { reading in
            if reading.bytes > 0 {
                report.packsRead += 1
                report.bytesRead += UInt64(reading.bytes)
            }
            if var issue = reading.issue {
                let pack = ID(hex: String(issue.object.dropFirst("data/".count)))
                issue.affected = (pack.flatMap { users[$0] } ?? []).sorted().map { AffectedFile(snapshot: id.hex, path: $0) }
                report.errors.append(issue)
            }
        }
        return report
    }

    public func check(readData: Bool, subset: DataSubset? = nil) async throws -> CheckReport {
        var report = CheckReport()
        report.subset = readData ? subset?.description : nil
        try await checkObjectLock(&report)
        let storage = repository.storage
        // Blob id → issues that make it unusable; filled by the pack checks, used by the walk.
        var badBlobs: [ID: Int] = [:]

        // 1. Index files. Of each pack only the index file naming it and the size its blobs imply
        // are kept: a large repository has a million blobs, and their lists are read again, one
        // index file at a time, when the packs are checked.
        let loadedIndexFiles = Set(repository.index.indexFileIDs)
        var indexed: [ID: IndexedPack] = [:]
        var readable: [ID] = []
        for info in try await storage.list(.index) {
            guard let id = ID(hex: info.handle.name) else { continue }
            report.indexFiles += 1
            do {
                let file = try IndexFile(decoding: try await repository.loadSealed(.index, id), name: id)
                readable.append(id)
                for pack in file.packs {
                    indexed[pack.id] = IndexedPack(indexFile: id, order: readable.count - 1, size: PackFormat.packSize(pack.blobs))
                }
                // A repository opened without its index (so that a damaged index file can be
                // reported here rather than fail the open) gets the readable ones now.
                if !loadedIndexFiles.contains(id) { repository.index.add(file, name: id) }
            } catch {
                report.errors.append(CheckIssue(kind: "damaged_index", object: "index/\(id.hex)", message: "Index file is damaged: \(error)"))
            }
        }
        report.packs = indexed.count
        var lists = IndexedPackLists(repository: repository)
        report.blobs = try await distinctBlobs(in: readable, reading: &lists)

        var stored: [ID: Int] = [:]
        for info in try await storage.list(.pack) {
            if let id = ID(hex: info.handle.name) { stored[id] = info.size }
        }
        for (id, _) in stored where indexed[id] == nil {
            report.warnings.append("Pack data/\(id.hex) is not in any index (left by an interrupted backup or prune); `bunker prune` removes it once it is older than the grace period (1 hour by default).")
        }

        func markBad(_ blobs: [PackedBlob], issue: CheckIssue) {
            report.errors.append(issue)
            for blob in blobs { badBlobs[blob.id] = report.errors.count - 1 }
        }

        // 2. Packs: presence and size, then content.
        var toRead: [ID] = []
        for pack in indexed.keys.sorted() {
            let entry = indexed[pack]!
            let object = "data/\(pack.hex)"
            // list() may miss objects on some stores: ask directly before calling a pack missing.
            var size = stored[pack]
            if size == nil { size = try? await storage.stat(ObjectHandle(.pack, pack)).size }
            guard let size else {
                markBad(try await lists.blobs(of: pack, in: entry.indexFile), issue: CheckIssue(kind: "missing_pack", object: object, message: "Pack \(object) is missing from the storage."))
                continue
            }
            if size != entry.size {
                markBad(try await lists.blobs(of: pack, in: entry.indexFile), issue: CheckIssue(kind: "damaged_pack", object: object, message: "Pack \(object) is \(size) bytes, the index implies \(entry.size) (truncated or overwritten)."))
                continue
            }
            if readData && (subset?.includes(pack) ?? true) { toRead.append(pack) }
        }

        if readData {
            // Grouped by index file, so that each is decoded once more for all its packs.
            toRead.sort { (indexed[$0]!.order, $0) < (indexed[$1]!.order, $1) }
            try await read(toRead, blobs: { try await lists.blobs(of: $0, in: indexed[$0]!.indexFile) }, complete: true) { reading in
                if reading.bytes > 0 {
                    report.packsRead += 1
                    report.bytesRead += UInt64(reading.bytes)
                }
                if let issue = reading.issue { markBad(reading.damaged, issue: issue) }
            }
        }

        // 3. Snapshots and their trees.
        var visitedTrees: [ID: Bool] = [:]
        var affected: [Int: Set<AffectedFile>] = [:]
        for info in try await storage.list(.snapshot) {
            guard let id = ID(hex: info.handle.name) else { continue }
            report.snapshots += 1
            let snapshot: Snapshot
            do {
                snapshot = try await repository.loadSnapshot(id)
            } catch {
                report.errors.append(CheckIssue(kind: "damaged_snapshot", object: "snapshots/\(id.hex)", message: "Snapshot \(id.short) is damaged: \(error)"))
                continue
            }
            report.errors += Checker.recordIssues(in: snapshot, id: id)
            var seenInSnapshot: Set<ID> = []
            try await repository.walkListings(from: [(id: snapshot.tree, path: "")]) { item in
                let (treeID, path) = item
                guard seenInSnapshot.insert(treeID).inserted else { return nil }
                // Trees already walked for another snapshot are walked again only to name
                // affected files when something is damaged.
                if visitedTrees[treeID] != nil && badBlobs.isEmpty { return nil }
                if let issue = badBlobs[treeID] {
                    affected[issue, default: []].insert(AffectedFile(snapshot: id.hex, path: path.isEmpty ? "/" : path))
                    return nil
                }
                guard repository.index.lookup(treeID) != nil else {
                    report.errors.append(CheckIssue(kind: "missing_blob", object: "tree \(treeID.hex)", message: "Directory listing \(treeID.short) is in no index.", affected: [AffectedFile(snapshot: id.hex, path: path.isEmpty ? "/" : path)]))
                    return nil
                }
                return treeID
            } visit: { item, loaded in
                let (treeID, path) = item
                let alreadyChecked = visitedTrees[treeID] != nil
                let tree: Tree
                do {
                    tree = try loaded.get()
                } catch {
                    report.errors.append(CheckIssue(kind: "damaged_tree", object: "tree \(treeID.hex)", message: "Directory listing \(treeID.short) cannot be read: \(error)", affected: [AffectedFile(snapshot: id.hex, path: path.isEmpty ? "/" : path)]))
                    return []
                }
                if !alreadyChecked {
                    report.errors += Checker.nameIssues(in: tree, id: treeID, snapshot: id, path: path.isEmpty ? "/" : path)
                }
                visitedTrees[treeID] = true
                var under: [(id: ID, path: String)] = []
                for node in tree.nodes where node.hasSafeName {
                    let child = path + "/" + node.name
                    switch node.type {
                    case .directory:
                        if let sub = node.subtree { under.append((sub, child)) }
                    case .file:
                        var missing = false
                        for blob in node.content ?? [] {
                            if let issue = badBlobs[blob] {
                                affected[issue, default: []].insert(AffectedFile(snapshot: id.hex, path: child))
                            } else if !alreadyChecked, !repository.index.contains(blob) {
                                missing = true
                            }
                        }
                        if missing {
                            report.errors.append(CheckIssue(kind: "missing_blob", object: "file content", message: "Chunks of \(child) are in no index.", affected: [AffectedFile(snapshot: id.hex, path: child)]))
                        }
                    case .symlink, .fifo, .socket, .characterDevice, .blockDevice:
                        break
                    }
                }
                return under
            }
        }
        for (issue, files) in affected {
            report.errors[issue].affected += files.sorted { ($0.snapshot, $0.path) < ($1.snapshot, $1.path) }
        }
        try await checkHolds(&report)
        try await checkWal(&report, readData: readData)
        return report
    }

    /// How many distinct blobs the readable index files name.
    ///
    /// When the repository's index holds exactly those files and nothing this process wrote
    /// besides, that is its count; otherwise (a serving process whose index is older than the
    /// storage, or that is writing a backup) the files are read again and their ids counted.
    private func distinctBlobs(in files: [ID], reading lists: inout IndexedPackLists) async throws -> Int {
        let index = repository.index
        if Set(index.indexFileIDs) == Set(files), index.unsavedPackCount == 0 { return index.count }
        var ids: Set<ID> = []
        for file in files {
            for blobs in try await lists.packs(in: file).values {
                for blob in blobs { ids.insert(blob.id) }
            }
        }
        return ids.count
    }

    /// Names in a directory listing that a restore must refuse: empty, `.`, `..`, holding a `/`
    /// or NUL byte (judged on bytes), or the same name twice. Bunker never writes such a listing,
    /// so one is damage (or a crafted snapshot), never data.
    static func nameIssues(in tree: Tree, id treeID: ID, snapshot: ID, path: String) -> [CheckIssue] {
        var issues: [CheckIssue] = []
        for node in tree.nodes where !node.hasSafeName {
            issues.append(CheckIssue(
                kind: "damaged_tree", object: "tree \(treeID.hex)",
                message: "Directory listing \(treeID.short) names an entry \(node.name.debugDescription), which could lead a restore outside its target; it will never be restored.",
                affected: [AffectedFile(snapshot: snapshot.hex, path: path)]))
        }
        if let duplicate = tree.duplicateName {
            issues.append(CheckIssue(
                kind: "damaged_tree", object: "tree \(treeID.hex)",
                message: "Directory listing \(treeID.short) names \(duplicate.name.debugDescription) more than once.",
                affected: [AffectedFile(snapshot: snapshot.hex, path: path)]))
        }
        return issues
    }

    /// What a snapshot's metadata records that a restore would use to build a path and must
    /// refuse: a source name or a recorded file name that is not a plain name.
    static func recordIssues(in snapshot: Snapshot, id: ID) -> [CheckIssue] {
        var issues: [CheckIssue] = []
        var names = Set<[UInt8]>()
        for source in snapshot.sources ?? [] {
            if let problem = source.pathProblem {
                issues.append(CheckIssue(kind: "damaged_snapshot", object: "snapshots/\(id.hex)", message: "Snapshot \(id.short) \(problem); it will never be restored."))
            }
            if !names.insert(Array(source.name.utf8)).inserted {
                issues.append(CheckIssue(kind: "damaged_snapshot", object: "snapshots/\(id.hex)", message: "Snapshot \(id.short) lists source \(source.name.debugDescription) more than once."))
            }
        }
        return issues
    }

    /// 4. Holds: a damaged one blocks every forget, so it is an error; one naming a snapshot
    /// that is gone protects nothing, so it is a warning.
    private func checkHolds(_ report: inout CheckReport) async throws {
        let snapshots = Set(try await repository.storage.list(.snapshot).map(\.handle.name))
        for info in try await repository.storage.list(.hold) {
            guard let id = ID(hex: info.handle.name) else { continue }
            do {
                let hold = try JSONCoding.decoder.decode(Hold.self, from: try await repository.loadSealed(.hold, id))
                if !snapshots.contains(hold.snapshot.hex), !(try await repository.storage.exists(ObjectHandle(.snapshot, hold.snapshot))) {
                    report.warnings.append("Hold holds/\(id.short) names snapshot \(hold.snapshot.short), which no longer exists; `bunker hold remove \(id.short)` removes it.")
                }
            } catch {
                report.errors.append(CheckIssue(kind: "damaged_hold", object: "holds/\(id.hex)", message: "Hold holds/\(id.hex) is damaged, so no forget can run until it is removed or restored from a copy of the repository: \(error)"))
            }
        }
    }
}

/// Where a verify finds a pack's blob list again.
private struct IndexedPack {
    /// The index file naming the pack (the last one listed, when several do).
    var indexFile: ID
    /// That file's place in the listing.
    var order: Int
    /// The pack's size its blobs imply.
    var size: Int
}

/// Blob lists of packs, from their index files decoded again one at a time: a verify of a large
/// repository holds one index file's lists, not every pack's.
private struct IndexedPackLists {
    let repository: Repository
    private var current: (file: ID, packs: [ID: [PackedBlob]])?

    init(repository: Repository) {
        self.repository = repository
    }

    /// The packs an index file names, a pack named twice by its last entry (as when the file
    /// was first read).
    mutating func packs(in file: ID) async throws -> [ID: [PackedBlob]] {
        if let current, current.file == file { return current.packs }
        current = nil
        let decoded = try IndexFile(decoding: try await repository.loadSealed(.index, file), name: file)
        let packs = Dictionary(decoded.packs.map { ($0.id, $0.blobs) }, uniquingKeysWith: { _, last in last })
        current = (file, packs)
        return packs
    }

    mutating func blobs(of pack: ID, in file: ID) async throws -> [PackedBlob] {
        try await packs(in: file)[pack] ?? []
    }
}
