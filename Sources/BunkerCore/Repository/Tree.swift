import Foundation

/// One entry of a directory listing.
///
/// Trees are written and read by ``TreeCoding``, which must match this type's `Codable`
/// conformance byte for byte: a new field goes into both, and into the samples of its tests.
///
/// **Names are bytes.** A name (or a symlink's target) that is valid UTF-8 is stored in `name`
/// (`link_target`) as it is; one that is not is stored byte for byte in `name_bytes`
/// (`link_target_bytes`, base64) and `name` holds a readable form with U+FFFD for the bad bytes
/// (format version 3, docs/repository-format.md §8.1). Use ``nameBytes`` and ``linkTargetBytes``
/// for anything that touches a filesystem; ``name`` is for people.
public struct Node: Codable, Sendable, Equatable {
    /// What a node is.
    public enum Kind: String, Codable, Sendable {
        case file, directory = "dir", symlink
        /// Special files (format version 3): recorded as what they are, never read.
        case fifo, socket, characterDevice = "chardev", blockDevice = "blockdev"

        /// Whether the node is a FIFO, socket or device file.
        public var isSpecial: Bool {
            switch self {
            case .fifo, .socket, .characterDevice, .blockDevice: true
            case .file, .directory, .symlink: false
            }
        }
    }

    /// The name, or a readable form of it when it is not valid UTF-8 (see ``nameBytes``).
    public var name: String
    public var type: Kind
    /// Permission bits, including setuid, setgid and sticky (`st_mode & 0o7777`).
    public var mode: UInt32
    /// Modification time in nanoseconds since 1970 (UTC).
    public var mtimeNanoseconds: Int64
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64?
    public var inode: UInt64?
    public var device: UInt64?
    /// A character or block device's numbers (`st_rdev`).
    public var rdev: UInt64?
    /// A file's chunks, in order.
    public var content: [ID]?
    /// SHA-256 of a file's whole plaintext, checked after every restore.
    public var sha256: String?
    /// A directory's listing.
    public var subtree: ID?
    /// A symlink's target, or a readable form of it when it is not valid UTF-8.
    public var linkTarget: String?
    /// The name's bytes when they are not valid UTF-8; nil otherwise.
    public var rawName: Data?
    /// The symlink target's bytes when they are not valid UTF-8; nil otherwise.
    public var rawLinkTarget: Data?

    enum CodingKeys: String, CodingKey {
        case name, type, mode, uid, gid, size, inode, device, rdev, content, sha256, subtree
        case mtimeNanoseconds = "mtime_ns"
        case linkTarget = "link_target"
        case rawName = "name_bytes"
        case rawLinkTarget = "link_target_bytes"
    }

    public init(name: String, type: Kind, mode: UInt32, mtimeNanoseconds: Int64, uid: UInt32, gid: UInt32) {
        self.name = name
        self.type = type
        self.mode = mode
        self.mtimeNanoseconds = mtimeNanoseconds
        self.uid = uid
        self.gid = gid
    }

    /// A node named by raw bytes, as a directory listing gives them.
    public init(nameBytes: [UInt8], type: Kind, mode: UInt32, mtimeNanoseconds: Int64, uid: UInt32, gid: UInt32) {
        self.init(name: "", type: type, mode: mode, mtimeNanoseconds: mtimeNanoseconds, uid: uid, gid: gid)
        self.nameBytes = nameBytes
    }

    /// The name exactly as the filesystem has it.
    public var nameBytes: [UInt8] {
        get { rawName.map { Array($0) } ?? Array(name.utf8) }
        set {
            if let text = String(validating: newValue, as: UTF8.self) {
                name = text
                rawName = nil
            } else {
                name = String(decoding: newValue, as: UTF8.self)
                rawName = Data(newValue)
            }
        }
    }

    /// The symlink's target exactly as the filesystem has it.
    public var linkTargetBytes: [UInt8]? {
        get { rawLinkTarget.map { Array($0) } ?? linkTarget.map { Array($0.utf8) } }
        set {
            guard let newValue else {
                linkTarget = nil
                rawLinkTarget = nil
                return
            }
            if let text = String(validating: newValue, as: UTF8.self) {
                linkTarget = text
                rawLinkTarget = nil
            } else {
                linkTarget = String(decoding: newValue, as: UTF8.self)
                rawLinkTarget = Data(newValue)
            }
        }
    }

    /// Calls `body` with the bytes of ``nameBytes`` where they lie, without copying them into a
    /// new array: a no-change backup of half a million files looks each one up in its parent
    /// listing by name, and building an array per comparison took about 4 % of its CPU (`perf`,
    /// the 10 GiB benchmark set).
    func withNameBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let rawName { return try rawName.withUnsafeBytes(body) }
        var name = name
        return try name.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }

    /// The order of names in a listing, as `nameBytes.lexicographicallyPrecedes(_:)` orders
    /// them (unsigned bytes, a prefix first): negative, zero or positive.
    static func compareNames(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let common = min(a.count, b.count)
        if common > 0 {
            let order = memcmp(a.baseAddress!, b.baseAddress!, common)
            if order != 0 { return Int(order) }
        }
        return a.count - b.count
    }

    /// Whether this node's name is exactly these bytes.
    func hasName(_ bytes: [UInt8]) -> Bool {
        withNameBytes { a in bytes.withUnsafeBytes { Node.compareNames(a, $0) == 0 } }
    }

    /// Whether this node's name sorts before `other`'s in a listing.
    func nameSortsBefore(_ other: Node) -> Bool {
        withNameBytes { a in other.withNameBytes { b in Node.compareNames(a, b) < 0 } }
    }

    /// Refuses names that could escape the restore target: empty, `.`, `..`, or holding a `/`
    /// or NUL byte. Judged on the bytes, never on Swift's `Character`s (`"/\u{301}"` is one
    /// `Character` that is not `"/"`).
    public var hasSafeName: Bool { Node.isSafeName(nameBytes) }

    /// Whether `bytes` can name an entry inside a directory and nothing else.
    public static func isSafeName(_ bytes: [UInt8]) -> Bool {
        if bytes.isEmpty || bytes == [0x2E] || bytes == [0x2E, 0x2E] { return false }
        return !bytes.contains(0x2F) && !bytes.contains(0)
    }

    /// Whether `name` (from a snapshot's metadata, a config, a command line) is a safe name.
    public static func isSafeName(_ name: String) -> Bool { isSafeName(Array(name.utf8)) }
}

/// A directory listing, stored as a blob of type ``BlobType/tree``: JSON with sorted keys, nodes
/// sorted by the bytes of their names, so that an unchanged directory produces the same bytes and
/// thus the same id.
public struct Tree: Codable, Sendable, Equatable {
    public var nodes: [Node]

    public init(nodes: [Node]) {
        // A backup hands its nodes in order already (a directory is listed sorted): checking
        // costs one comparison per node, sorting a copy of every node.
        let inOrder = nodes.indices.dropFirst().allSatisfy { nodes[$0 - 1].nameSortsBefore(nodes[$0]) }
        self.nodes = inOrder ? nodes : nodes.sorted { $0.nameSortsBefore($1) }
    }

    /// The node with this name (binary search: nodes are sorted by their names' bytes).
    public func node(named name: String) -> Node? {
        node(nameBytes: Array(name.utf8))
    }

    /// The node whose name is exactly these bytes.
    public func node(nameBytes key: [UInt8]) -> Node? {
        position(ofNameBytes: key).map { nodes[$0] }
    }

    /// The node whose name is exactly these bytes, its chunk list let go of by this listing (the
    /// copy returned keeps it). A backup hands the parent snapshot's nodes one by one to the
    /// tasks that compare them, so that a changed file's old list (half a million ids for a
    /// large database) can be freed once it is seen to have changed, not with its directory.
    mutating func takeNode(nameBytes key: [UInt8]) -> Node? {
        guard let position = position(ofNameBytes: key) else { return nil }
        let node = nodes[position]
        nodes[position].content = nil
        return node
    }

    private func position(ofNameBytes key: [UInt8]) -> Int? {
        key.withUnsafeBytes { key in
            var low = 0
            var high = nodes.count
            while low < high {
                let mid = (low + high) / 2
                let order = nodes[mid].withNameBytes { Node.compareNames($0, key) }
                if order == 0 { return mid }
                if order < 0 { low = mid + 1 } else { high = mid }
            }
            return nil
        }
    }

    /// The first name that appears twice (byte for byte), if any: a damaged listing.
    public var duplicateName: Node? {
        var seen = Set<[UInt8]>()
        for node in nodes where !seen.insert(node.nameBytes).inserted { return node }
        return nil
    }
}
