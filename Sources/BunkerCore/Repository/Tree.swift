import Foundation

/// One entry of a directory listing.
///
/// Trees are written and read by ``TreeCoding``, which must match this type's `Codable`
/// conformance byte for byte: a new field goes into both, and into the samples of its tests.
public struct Node: Codable, Sendable, Equatable {
    /// What a node is.
    public enum Kind: String, Codable, Sendable {
        case file, directory = "dir", symlink
    }

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
    /// A file's chunks, in order.
    public var content: [ID]?
    /// SHA-256 of a file's whole plaintext, checked after every restore.
    public var sha256: String?
    /// A directory's listing.
    public var subtree: ID?
    public var linkTarget: String?

    enum CodingKeys: String, CodingKey {
        case name, type, mode, uid, gid, size, inode, device, content, sha256, subtree
        case mtimeNanoseconds = "mtime_ns"
        case linkTarget = "link_target"
    }

    public init(name: String, type: Kind, mode: UInt32, mtimeNanoseconds: Int64, uid: UInt32, gid: UInt32) {
        self.name = name
        self.type = type
        self.mode = mode
        self.mtimeNanoseconds = mtimeNanoseconds
        self.uid = uid
        self.gid = gid
    }

    /// Refuses names that could escape the restore target.
    public var hasSafeName: Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }
}

/// A directory listing, stored as a blob of type ``BlobType/tree``: JSON with sorted keys, nodes
/// sorted by name, so that an unchanged directory produces the same bytes and thus the same id.
public struct Tree: Codable, Sendable, Equatable {
    public var nodes: [Node]

    public init(nodes: [Node]) {
        self.nodes = nodes.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    }

    /// The node with this name (binary search: nodes are sorted by their names' bytes).
    public func node(named name: String) -> Node? {
        let key = Array(name.utf8)
        var low = 0
        var high = nodes.count
        while low < high {
            let mid = (low + high) / 2
            let candidate = Array(nodes[mid].name.utf8)
            if candidate == key { return nodes[mid] }
            if candidate.lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return nil
    }
}
