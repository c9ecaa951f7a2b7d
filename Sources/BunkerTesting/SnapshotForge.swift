@testable import BunkerCore
import Foundation

/// Writes snapshots the way an independent implementation of docs/repository-format.md could:
/// any tree, any names, any snapshot metadata, sealed with the repository's key. For tests of
/// what a restore and a verify do with snapshots Bunker itself would never write.
public final class SnapshotForge: @unchecked Sendable {
    private let repository: Repository
    private let packer: Packer

    public init(_ repository: Repository) {
        self.repository = repository
        self.packer = Packer(storage: repository.storage, key: repository.key, targetSize: 1 << 20) { id, blobs, _ in
            repository.index.addPending(pack: id, blobs: blobs)
        }
    }

    /// A file node holding `content`.
    public func file(_ name: [UInt8], _ content: String, mode: UInt32 = 0o644) async throws -> Node {
        let data = Data(content.utf8)
        var node = Node(nameBytes: name, type: .file, mode: mode, mtimeNanoseconds: 1_700_000_000_000_000_000, uid: geteuid(), gid: getegid())
        var ids: [ID] = []
        if !data.isEmpty {
            let id = repository.key.blobID(of: data)
            try await packer.add([Packer.Entry(type: .data, id: id, sealed: try repository.key.seal(data), rawLength: 0)])
            ids.append(id)
        }
        node.content = ids
        node.size = UInt64(data.count)
        node.sha256 = ID.sha256(of: Array(data)).hex
        return node
    }

    /// File nodes whose contents are stored together in one bundle, each under the id of its
    /// `content` but holding `stored` where given: a blob that is not what its id says (what a
    /// bug or a forged pack would give), though it authenticates and its pack is named by its
    /// SHA-256. The nodes' SHA-256 is that of `content`.
    public func bundledFiles(_ files: [(name: [UInt8], content: String, stored: String?)]) async throws -> [Node] {
        var members: [(id: ID, length: Int)] = []
        var plaintext = Data()
        var nodes: [Node] = []
        for file in files {
            let content = Data(file.content.utf8)
            let stored = Data((file.stored ?? file.content).utf8)
            let id = repository.key.blobID(of: content)
            members.append((id, stored.count))
            plaintext.append(stored)
            var node = Node(nameBytes: file.name, type: .file, mode: 0o644, mtimeNanoseconds: 1_700_000_000_000_000_000, uid: geteuid(), gid: getegid())
            node.content = [id]
            node.size = UInt64(content.count)
            node.sha256 = ID.sha256(of: Array(content)).hex
            nodes.append(node)
        }
        try await packer.add([Packer.Entry(bundle: members, sealed: try repository.key.seal(plaintext), rawLength: 0)])
        return nodes
    }

    /// A symlink node.
    public func symlink(_ name: [UInt8], to target: [UInt8]) -> Node {
        var node = Node(nameBytes: name, type: .symlink, mode: 0o777, mtimeNanoseconds: 1_700_000_000_000_000_000, uid: geteuid(), gid: getegid())
        node.linkTargetBytes = target
        return node
    }

    /// A directory node listing `children`, stored in the order given (not sorted: a forged
    /// listing may hold what Bunker would never write, duplicates included).
    public func directory(_ name: [UInt8], _ children: [Node]) async throws -> Node {
        var node = Node(nameBytes: name, type: .directory, mode: 0o755, mtimeNanoseconds: 1_700_000_000_000_000_000, uid: geteuid(), gid: getegid())
        node.subtree = try await tree(children)
        return node
    }

    /// Stores a listing of `children` as they are; returns its id.
    public func tree(_ children: [Node]) async throws -> ID {
        var tree = Tree(nodes: [])
        tree.nodes = children
        let plaintext = TreeCoding.encode(tree)
        let id = repository.key.blobID(of: plaintext)
        try await packer.add([Packer.Entry(type: .tree, id: id, sealed: try repository.key.seal(plaintext), rawLength: 0)])
        return id
    }

    /// Writes the packs and index, then a snapshot whose root lists `root`.
    @discardableResult
    public func snapshot(_ root: [Node], sources: [SnapshotSource]? = nil, backupType: String? = nil, paths: [String] = ["/forged"]) async throws -> ID {
        let rootID = try await tree(root)
        try await packer.flush()
        try await repository.flushIndex()
        let snapshot = Snapshot(
            time: Date(), hostname: "forge", username: "forge", paths: paths, tree: rootID,
            programVersion: "forge 1", backupType: backupType, sources: sources)
        return try await repository.saveSnapshot(snapshot)
    }
}
