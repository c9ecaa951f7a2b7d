import Foundation

/// A directory listing whose nodes are decoded one at a time, when asked for: how the snapshot
/// browser reads a folder, which it shows a page (a thousand nodes) at a time.
///
/// Decoding a whole ``Tree`` builds every node: a `String` for each file's SHA-256 and an array
/// for its content ids (most of a tree's bytes), then copies of them all into the array of
/// nodes. For a folder of 100,000 files that is most of the time it takes to open. An outline
/// checks the whole blob once, exactly as decoding it would (``TreeCoding/outline(_:)``), but
/// keeps only each node's kind and where its JSON starts; ``node(at:)`` parses that one node.
/// The plaintext is kept meanwhile: about the size of the decoded nodes it stands for.
public struct TreeOutline: Sendable {
    private enum Storage: Sendable {
        /// The blob's JSON and the offset of each node's opening brace in it.
        case json(Data, starts: [Int])
        /// Nodes decoded whole: a blob the fast parser leaves to `JSONDecoder`, or nodes given.
        case nodes([Node])
    }

    private let storage: Storage
    /// The kind of each node, in stored order (by the bytes of their names).
    public let kinds: [Node.Kind]

    init(json: Data, kinds: [Node.Kind], starts: [Int]) {
        storage = .json(json, starts: starts)
        self.kinds = kinds
    }

    /// An outline of nodes already decoded, kept in the order given.
    public init(nodes: [Node]) {
        storage = .nodes(nodes)
        kinds = nodes.map(\.type)
    }

    /// How many nodes the listing has.
    public var count: Int { kinds.count }

    /// The node at `index` (in stored order), decoded now.
    public func node(at index: Int) -> Node {
        switch storage {
        case .json(let data, let starts): TreeCoding.node(in: data, at: starts[index])
        case .nodes(let nodes): nodes[index]
        }
    }

    /// The node with this name: a binary search, as ``Tree/node(named:)`` does, that decodes
    /// about 17 nodes of 100,000.
    public func node(named name: String) -> Node? {
        let key = Array(name.utf8)
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            let candidate = node(at: mid)
            let bytes = candidate.nameBytes
            if bytes == key { return candidate }
            if bytes.lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return nil
    }
}
