import Foundation

/// Hand-written JSON coding of ``Tree`` blobs, the hot path of a backup with few changes.
///
/// Such a backup loads every directory's listing from the parent snapshot and encodes its new
/// listing to learn whether it changed. Foundation's coders spend most of that time on the ids
/// (one `String` per id, a big file has 100,000 of them) and on their generic machinery.
///
/// **Encoding** writes exactly the bytes `JSONCoding.encoder` writes for a tree, the canonical
/// form of docs/repository-format.md §8.2: keys in sorted order, absent optionals left out,
/// compact, `/` unescaped, non-ASCII raw, `"` and `\` escaped, control characters as `\b`, `\t`,
/// `\n`, `\f`, `\r` or `\u00xx` (lowercase hex). An unchanged directory must keep its blob id, so
/// any difference from Foundation is a bug; the tests compare the two byte for byte.
///
/// **Decoding** parses strict JSON in a single pass over the bytes. Whatever it does not handle
/// (a number spelled `1.0` or `1e3`, a duplicate key, a trailing comma, a byte-order mark, a key
/// or ignored value with raw non-ASCII bytes or a lone surrogate, deep nesting in an ignored
/// value) or finds invalid, it hands to `JSONCoding.decoder`,
/// so that what is accepted, the result, and the error are those of the synthesized `Decodable`.
/// The fast path therefore only accepts documents that `JSONDecoder` accepts too, and gives
/// the same tree: nodes in stored order, unknown keys ignored, `null` for an optional as absent.
///
/// **Outlining** (``outline(_:)``, for the snapshot browser) runs the same parser over the same
/// bytes with the same checks, but keeps of each node only its kind and offset, and decodes a
/// node from there when asked: it accepts, refuses and gives exactly what decoding does.
enum TreeCoding {
    /// The canonical JSON of a tree.
    static func encode(_ tree: Tree) -> Data {
        var writer = TreeWriter(capacity: estimatedSize(of: tree))
        writer.write(tree)
        return writer.finish()
    }

    /// The canonical JSON of a tree, exactly as ``encode(_:)`` writes it, handed to `sink` in
    /// pieces of about 1 MiB and never held whole; returns its length. The tree is let go of once
    /// written.
    static func encode(_ tree: consuming Tree, streamingTo sink: @escaping (UnsafeRawBufferPointer) -> Void) -> Int {
        var writer = TreeWriter(streamingTo: sink)
        writer.write(tree)
        _ = consume tree
        return writer.finishStream()
    }

    /// About how long a tree's JSON is (a little more for usual names): 67 bytes per chunk id.
    static func estimatedSize(of tree: Tree) -> Int {
        var ids = 0
        for node in tree.nodes { ids += node.content?.count ?? 0 }
        return 16 + tree.nodes.count * 192 + ids * 67
    }

    /// Decodes a tree blob's plaintext; throws what `JSONCoding.decoder` throws for it.
    static func decode(_ data: Data) throws -> Tree {
        if let tree = parse(data) { return tree }
        return try JSONCoding.decoder.decode(Tree.self, from: data)
    }

    /// The fast path alone: nil for whatever it leaves to `JSONDecoder`, valid or not.
    static func parse(_ data: Data) -> Tree? {
        data.withUnsafeBytes { raw in
            var parser = TreeParser(input: raw.bindMemory(to: UInt8.self))
            defer { parser.release() }
            return try? parser.tree()
        }
    }

    /// A tree blob's plaintext as a ``TreeOutline``: accepts and refuses exactly what ``decode(_:)``
    /// does (the fast path runs the same checks on every node, keeping only its kind and where it
    /// starts; what it leaves to `JSONDecoder` is decoded whole), so that a node taken from the
    /// outline is the node `decode` gives.
    static func outline(_ data: Data) throws -> TreeOutline {
        let parsed: (kinds: [Node.Kind], starts: [Int])? = data.withUnsafeBytes { raw in
            var parser = TreeParser(input: raw.bindMemory(to: UInt8.self))
            defer { parser.release() }
            return try? parser.outline()
        }
        if let parsed { return TreeOutline(json: data, kinds: parsed.kinds, starts: parsed.starts) }
        return TreeOutline(nodes: try JSONCoding.decoder.decode(Tree.self, from: data).nodes)
    }

    /// The node whose JSON starts at `start` of `data`, which ``outline(_:)`` checked whole:
    /// the same bytes through the same parser, so it cannot fail.
    static func node(in data: Data, at start: Int) -> Node {
        data.withUnsafeBytes { raw in
            var parser = TreeParser(input: raw.bindMemory(to: UInt8.self), at: start)
            defer { parser.release() }
            guard let node = try? parser.node(keepingValues: true) else {
                preconditionFailure("A node of an outlined tree no longer parses at offset \(start).")
            }
            return node
        }
    }
}

extension Tree {
    /// A tree whose nodes keep the order given: decoding keeps the stored order, as the
    /// synthesized `init(from:)` does, rather than sorting like ``init(nodes:)``.
    fileprivate init(storedOrder nodes: [Node]) {
        self.nodes = nodes
    }
}

/// The keys of a node, in the canonical (sorted) order.
private enum NodeKey: Int {
    case content, device, gid, inode, linkTarget, linkTargetBytes, mode, mtimeNanoseconds, name, nameBytes, rdev, sha256, size, subtree, type, uid

    /// The key as written; the same spellings as `Node.CodingKeys`.
    var text: StaticString {
        switch self {
        case .content: "content"
        case .device: "device"
        case .gid: "gid"
        case .inode: "inode"
        case .linkTarget: "link_target"
        case .linkTargetBytes: "link_target_bytes"
        case .mode: "mode"
        case .mtimeNanoseconds: "mtime_ns"
        case .name: "name"
        case .nameBytes: "name_bytes"
        case .rdev: "rdev"
        case .sha256: "sha256"
        case .size: "size"
        case .subtree: "subtree"
        case .type: "type"
        case .uid: "uid"
        }
    }

    /// The key spelled by these bytes, if it is one.
    init?(_ bytes: UnsafeBufferPointer<UInt8>) {
        let candidate: NodeKey
        switch (bytes.count, bytes.first ?? 0) {
        case (3, UInt8(ascii: "g")): candidate = .gid
        case (3, UInt8(ascii: "u")): candidate = .uid
        case (4, UInt8(ascii: "m")): candidate = .mode
        case (4, UInt8(ascii: "n")): candidate = .name
        case (4, UInt8(ascii: "r")): candidate = .rdev
        case (10, UInt8(ascii: "n")): candidate = .nameBytes
        case (17, UInt8(ascii: "l")): candidate = .linkTargetBytes
        case (4, UInt8(ascii: "s")): candidate = .size
        case (4, UInt8(ascii: "t")): candidate = .type
        case (5, UInt8(ascii: "i")): candidate = .inode
        case (6, UInt8(ascii: "d")): candidate = .device
        case (6, UInt8(ascii: "s")): candidate = .sha256
        case (7, UInt8(ascii: "c")): candidate = .content
        case (7, UInt8(ascii: "s")): candidate = .subtree
        case (8, UInt8(ascii: "m")): candidate = .mtimeNanoseconds
        case (11, UInt8(ascii: "l")): candidate = .linkTarget
        default: return nil
        }
        guard bytes.spells(candidate.text) else { return nil }
        self = candidate
    }
}

extension StaticString {
    /// The literal's UTF-8, without a copy.
    fileprivate var bytes: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: utf8Start, count: utf8CodeUnitCount)
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// Whether these bytes are exactly the literal's: one `memcmp`, where the generic
    /// `elementsEqual` took a tenth of outlining a folder of 100,000 files (every key of every
    /// node is compared).
    fileprivate func spells(_ literal: StaticString) -> Bool {
        count == literal.utf8CodeUnitCount && (count == 0 || memcmp(baseAddress!, literal.utf8Start, count) == 0)
    }
}

private enum ASCII {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")

    /// The lowercase hex digit for a value below 16.
    @inline(__always) static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 &+ value : 0x57 &+ value
    }

    /// The value of a hex digit of either case, or 0xFF for any other byte.
    @inline(__always) static func hexValue(_ byte: UInt8) -> UInt8 {
        let digit = byte &- 0x30
        if digit < 10 { return digit }
        let letter = (byte | 0x20) &- 0x61
        if letter < 6 { return letter &+ 10 }
        return 0xFF
    }

    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool {
        byte &- 0x30 < 10
    }
}

// MARK: - Encoding

/// Appends a tree's canonical JSON to a byte buffer.
private struct TreeWriter: ~Copyable {
    private var bytes: OutputBytes
    /// Whether the next key is the first of its object (and so has no comma before it).
    private var firstKey = true
    /// Where the bytes go, a piece at a time, when they are not kept.
    private let sink: ((UnsafeRawBufferPointer) -> Void)?
    private var drained = 0
    /// The size of the pieces handed to `sink`.
    private static let piece = 1 << 20

    init(capacity: Int) {
        bytes = OutputBytes(capacity: capacity)
        sink = nil
    }

    init(streamingTo sink: @escaping (UnsafeRawBufferPointer) -> Void) {
        bytes = OutputBytes(capacity: TreeWriter.piece + 4096)
        self.sink = sink
    }

    /// The bytes written, handed over without a copy.
    consuming func finish() -> Data {
        bytes.data()
    }

    /// Hands the rest to the sink; returns how many bytes were written in all.
    consuming func finishStream() -> Int {
        if let sink, bytes.count > 0 { bytes.withContents(sink) }
        return drained + bytes.count
    }

    /// With a sink, hands it the bytes written so far once they fill a piece. Called between ids
    /// and between nodes: a database's node alone is tens of MB.
    @inline(__always) private mutating func drainIfFull() {
        guard let sink, bytes.count >= TreeWriter.piece else { return }
        bytes.withContents(sink)
        drained += bytes.count
        bytes.removeAll()
    }

    mutating func write(_ tree: Tree) {
        append("{\"nodes\":[")
        for (i, node) in tree.nodes.enumerated() {
            if i > 0 { bytes.append(ASCII.comma) }
            write(node)
            drainIfFull()
        }
        append("]}")
    }

    private mutating func write(_ node: Node) {
        bytes.append(ASCII.openBrace)
        firstKey = true
        if let content = node.content {
            key(.content)
            bytes.append(ASCII.openBracket)
            for (i, id) in content.enumerated() {
                if i > 0 { bytes.append(ASCII.comma) }
                write(id)
                drainIfFull()
            }
            bytes.append(ASCII.closeBracket)
        }
        if let device = node.device { key(.device); write(device) }
        key(.gid); write(UInt64(node.gid))
        if let inode = node.inode { key(.inode); write(inode) }
        if let linkTarget = node.linkTarget { key(.linkTarget); write(linkTarget) }
        if let raw = node.rawLinkTarget { key(.linkTargetBytes); write(raw.base64EncodedString()) }
        key(.mode); write(UInt64(node.mode))
        key(.mtimeNanoseconds); write(node.mtimeNanoseconds)
        key(.name); write(node.name)
        if let raw = node.rawName { key(.nameBytes); write(raw.base64EncodedString()) }
        if let rdev = node.rdev { key(.rdev); write(rdev) }
        if let sha256 = node.sha256 { key(.sha256); write(sha256) }
        if let size = node.size { key(.size); write(size) }
        if let subtree = node.subtree { key(.subtree); write(subtree) }
        key(.type); write(node.type.rawValue)
        key(.uid); write(UInt64(node.uid))
        bytes.append(ASCII.closeBrace)
    }

    private mutating func append(_ literal: StaticString) {
        bytes.append(contentsOf: literal.bytes)
    }

    private mutating func key(_ key: NodeKey) {
        if !firstKey { bytes.append(ASCII.comma) }
        firstKey = false
        bytes.append(ASCII.quote)
        append(key.text)
        bytes.append(ASCII.quote)
        bytes.append(ASCII.colon)
    }

    private mutating func write(_ value: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for UInt64.max's 20 digits
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            var rest = value
            repeat {
                start -= 1
                buffer[start] = 0x30 &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest != 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    private mutating func write(_ value: Int64) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        write(value.magnitude)
    }

    /// 64 lowercase hex digits in quotes, formatted on the stack and appended at once (a file
    /// can have 100,000 ids; appending byte by byte costs several times more).
    private mutating func write(_ id: ID) {
        var words = (id.w0, id.w1, id.w2, id.w3)
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeBytes(of: &words) { raw in
            withUnsafeMutableBytes(of: &text) { out in
                out[0] = ASCII.quote
                for (i, byte) in raw.enumerated() {
                    out[1 + 2 * i] = ASCII.hexDigit(byte >> 4)
                    out[2 + 2 * i] = ASCII.hexDigit(byte & 0x0F)
                }
                out[65] = ASCII.quote
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: out[0..<66]))
            }
        }
    }

    /// A string with JSONEncoder's escapes.
    private mutating func write(_ text: String) {
        bytes.append(ASCII.quote)
        // Most names need no escape: their UTF-8 is copied whole.
        let copied = text.utf8.withContiguousStorageIfAvailable { utf8 in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == ASCII.quote || $0 == ASCII.backslash }) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if copied != true { writeEscaped(text) }
        bytes.append(ASCII.quote)
    }

    private mutating func writeEscaped(_ text: String) {
        for byte in text.utf8 {
            switch byte {
            case ASCII.quote, ASCII.backslash:
                bytes.append(ASCII.backslash)
                bytes.append(byte)
            case 0x08: append("\\b")
            case 0x09: append("\\t")
            case 0x0A: append("\\n")
            case 0x0C: append("\\f")
            case 0x0D: append("\\r")
            case ..<0x20:
                append("\\u00")
                bytes.append(ASCII.hexDigit(byte >> 4))
                bytes.append(ASCII.hexDigit(byte & 0x0F))
            default:
                bytes.append(byte)
            }
        }
    }
}

/// Bytes written into one malloc'd buffer that the `Data` returned by ``data()`` takes over
/// without a copy. The listing of a folder holding a large database names its half a million
/// page chunks in 38 MB of JSON: built in an array and then copied into a `Data`, it was held
/// twice at the peak of a 10 GiB backup.
private struct OutputBytes: ~Copyable {
    private var base: UnsafeMutableRawPointer
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        guard let base = malloc(self.capacity) else {
            preconditionFailure("Out of memory for a directory listing of \(capacity) bytes.")
        }
        self.base = base
    }

    deinit { free(base) }

    @inline(__always) mutating func append(_ byte: UInt8) {
        if count == capacity { grow(to: count + 1) }
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        if count + bytes.count > capacity { grow(to: count + bytes.count) }
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func append(contentsOf bytes: UnsafeBufferPointer<UInt8>) {
        append(contentsOf: UnsafeRawBufferPointer(bytes))
    }

    private mutating func grow(to needed: Int) {
        let larger = max(needed, capacity * 2)
        guard let grown = realloc(base, larger) else {
            preconditionFailure("Out of memory for a directory listing of \(larger) bytes.")
        }
        base = grown
        capacity = larger
    }

    func withContents(_ body: (UnsafeRawBufferPointer) -> Void) {
        body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Forgets what was written (after ``withContents(_:)`` handed it on); keeps the buffer.
    mutating func removeAll() {
        count = 0
    }

    /// The bytes as a `Data` that owns the buffer (shrunk to fit, which needs no copy).
    consuming func data() -> Data {
        let fitted = count < capacity ? (realloc(base, max(count, 1)) ?? base) : base
        let result = Data(bytesNoCopy: fitted, count: count, deallocator: .free)
        discard self
        return result
    }
}

// MARK: - Decoding

/// Thrown by the fast decoder for anything it leaves to `JSONDecoder`: never seen by callers.
private struct TakeSlowPath: Error {}

/// A single-pass parser of tree JSON over borrowed bytes.
///
/// Reads go through ``current``, which yields 0 past the end (or check the bounds themselves): a
/// raw 0 byte is valid nowhere in JSON, so running off the end fails like any unexpected byte.
private struct TreeParser {
    let input: UnsafeBufferPointer<UInt8>
    var position = 0
    /// Where strings with escapes are unescaped; allocated on first use with room for the rest of
    /// the input (an unescaped string is never longer than its JSON, and later strings lie
    /// further on), freed by ``release()``.
    private var scratch: UnsafeMutableBufferPointer<UInt8>?

    /// Ignored values nested deeper than this go to JSONDecoder (which has a limit of its own).
    private static let maximumDepth = 32

    init(input: UnsafeBufferPointer<UInt8>, at position: Int = 0) {
        self.input = input
        self.position = position
    }

    mutating func release() {
        scratch?.deallocate()
        scratch = nil
    }

    /// The whole document, every node decoded.
    mutating func tree() throws(TakeSlowPath) -> Tree {
        var nodes: [Node] = []
        try document { parser throws(TakeSlowPath) in nodes.append(try parser.node(keepingValues: true)) }
        return Tree(storedOrder: nodes)
    }

    /// The whole document, checked as strictly as by ``tree()``, keeping only each node's kind
    /// and the position of its opening brace.
    mutating func outline() throws(TakeSlowPath) -> (kinds: [Node.Kind], starts: [Int]) {
        var kinds: [Node.Kind] = [], starts: [Int] = []
        try document { parser throws(TakeSlowPath) in
            starts.append(parser.position)
            kinds.append(try parser.node(keepingValues: false).type)
        }
        return (kinds, starts)
    }

    /// One object with a `nodes` array, then nothing but whitespace; `element` reads each node.
    private mutating func document(_ element: (inout TreeParser) throws(TakeSlowPath) -> Void) throws(TakeSlowPath) {
        skipWhitespace()
        try expect(ASCII.openBrace)
        var sawNodes = false
        if !closes(ASCII.closeBrace) {
            repeat {
                let key = try self.key()
                if key.spells("nodes") {
                    guard !sawNodes else { throw TakeSlowPath() }
                    sawNodes = true
                    try expect(ASCII.openBracket)
                    if !closes(ASCII.closeBracket) {
                        repeat {
                            try element(&self)
                        } while try separator(closing: ASCII.closeBracket)
                    }
                } else {
                    try skipValue(depth: 1)
                }
            } while try separator(closing: ASCII.closeBrace)
        }
        skipWhitespace()
        guard position == input.count, sawNodes else { throw TakeSlowPath() }
    }

    /// One node object. Without `keepingValues` (for an outline) every member is read and checked
    /// just the same, but its strings (name, SHA-256, link target) and content ids, most of a
    /// tree's bytes and all of its allocations, are left empty: only the kind may be used.
    mutating func node(keepingValues keep: Bool) throws(TakeSlowPath) -> Node {
        var name: String?
        var type: Node.Kind?
        var mode: UInt32?, uid: UInt32?, gid: UInt32?
        var mtimeNanoseconds: Int64?
        var size: UInt64?, inode: UInt64?, device: UInt64?, rdev: UInt64?
        var content: [ID]?
        var sha256: String?, linkTarget: String?
        var subtree: ID?
        var seen: UInt32 = 0

        try expect(ASCII.openBrace)
        if !closes(ASCII.closeBrace) {
            repeat {
                guard let key = NodeKey(try self.key()) else {
                    try skipValue(depth: 2)
                    continue
                }
                // JSONDecoder keeps the first of duplicate keys; rare enough to leave to it.
                let bit: UInt32 = 1 << key.rawValue
                guard seen & bit == 0 else { throw TakeSlowPath() }
                seen |= bit
                switch key {
                case .name: name = try string(keeping: keep)
                case .type: type = try kind()
                case .mode: mode = try unsigned32()
                case .uid: uid = try unsigned32()
                case .gid: gid = try unsigned32()
                case .mtimeNanoseconds: mtimeNanoseconds = try signed()
                case .size: size = try null() ? nil : unsigned()
                case .inode: inode = try null() ? nil : unsigned()
                case .device: device = try null() ? nil : unsigned()
                case .rdev: rdev = try null() ? nil : unsigned()
                // Names that are not UTF-8 are rare: their base64 is left to JSONDecoder.
                case .nameBytes, .linkTargetBytes: throw TakeSlowPath()
                case .content: content = try null() ? nil : idArray(keeping: keep)
                case .sha256: sha256 = try null() ? nil : string(keeping: keep)
                case .subtree: subtree = try null() ? nil : id()
                case .linkTarget: linkTarget = try null() ? nil : string(keeping: keep)
                }
            } while try separator(closing: ASCII.closeBrace)
        }
        guard let name, let type, let mode, let mtimeNanoseconds, let uid, let gid else { throw TakeSlowPath() }
        var node = Node(name: name, type: type, mode: mode, mtimeNanoseconds: mtimeNanoseconds, uid: uid, gid: gid)
        node.size = size
        node.inode = inode
        node.device = device
        node.rdev = rdev
        node.content = content
        node.sha256 = sha256
        node.subtree = subtree
        node.linkTarget = linkTarget
        return node
    }

    /// The ids of an array, checked; empty without `keeping`.
    ///
    /// The array is allocated once, at the count its span in the input allows (ids hold no `]`,
    /// so the first one closes it; each takes 67 bytes with its quotes and comma). Grown by
    /// appends, the half a million chunk ids of a 4 GiB database (18 MB) ended in a 33 MB buffer,
    /// and the step to it held the 17 MB one beside it: 50 MB for one listing read.
    private mutating func idArray(keeping: Bool) throws(TakeSlowPath) -> [ID] {
        try expect(ASCII.openBracket)
        var ids: [ID] = []
        if keeping, position < input.count,
           let end = memchr(input.baseAddress! + position, Int32(ASCII.closeBracket), input.count - position) {
            ids.reserveCapacity((UnsafeRawPointer(end) - UnsafeRawPointer(input.baseAddress! + position)) / 67 + 1)
        }
        if !closes(ASCII.closeBracket) {
            repeat {
                let id = try id()
                if keeping { ids.append(id) }
            } while try separator(closing: ASCII.closeBracket)
        }
        return ids
    }

    /// An id: 64 hex digits of either case, as `ID(hex:)` accepts.
    private mutating func id() throws(TakeSlowPath) -> ID {
        // The fast path reads the digits in place; anything else (escapes, a wrong length)
        // goes through the string scanner.
        if current == ASCII.quote, position + 65 < input.count, input[position + 65] == ASCII.quote,
           let id = TreeParser.id(hex: UnsafeBufferPointer(rebasing: input[(position + 1)..<(position + 65)])) {
            position += 66
            return id
        }
        let text = try stringBytes(rawNonASCII: false)
        guard text.count == 64, let id = TreeParser.id(hex: text) else { throw TakeSlowPath() }
        return id
    }

    /// Parses exactly 64 hex digits straight into an id's bytes.
    private static func id(hex digits: UnsafeBufferPointer<UInt8>) -> ID? {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let valid = withUnsafeMutableBytes(of: &words) { raw in
            var invalid: UInt8 = 0
            for i in 0..<32 {
                let high = ASCII.hexValue(digits[2 * i])
                let low = ASCII.hexValue(digits[2 * i + 1])
                invalid |= high | low
                raw[i] = high << 4 | low
            }
            return invalid & 0xF0 == 0
        }
        guard valid else { return nil }
        return withUnsafeBytes(of: &words) { ID(bytes: $0) }
    }

    private mutating func kind() throws(TakeSlowPath) -> Node.Kind {
        let text = try stringBytes(rawNonASCII: false)
        if text.spells("file") { return .file }
        if text.spells("dir") { return .directory }
        if text.spells("symlink") { return .symlink }
        if let kind = Node.Kind(rawValue: String(decoding: text, as: UTF8.self)) { return kind }
        throw TakeSlowPath()
    }

    /// A string value; invalid UTF-8 is left to JSONDecoder to refuse. Without `keeping`, the
    /// UTF-8 is checked but no `String` made (an empty one is returned).
    private mutating func string(keeping: Bool = true) throws(TakeSlowPath) -> String {
        let bytes = try stringBytes(rawNonASCII: true)
        if !keeping, !bytes.contains(where: { $0 >= 0x80 }) { return "" }  // ASCII is valid UTF-8
        guard let text = String(validating: bytes, as: UTF8.self) else { throw TakeSlowPath() }
        return keeping ? text : ""
    }

    private mutating func unsigned32() throws(TakeSlowPath) -> UInt32 {
        guard let value = UInt32(exactly: try unsigned()) else { throw TakeSlowPath() }
        return value
    }

    private mutating func signed() throws(TakeSlowPath) -> Int64 {
        if current == UInt8(ascii: "-") {
            position += 1
            let magnitude = try unsigned()
            guard magnitude <= UInt64(1) << 63 else { throw TakeSlowPath() }
            return Int64(bitPattern: 0 &- magnitude)
        }
        guard let value = Int64(exactly: try unsigned()) else { throw TakeSlowPath() }
        return value
    }

    /// Digits without sign, fraction or exponent, and without a leading zero (which JSON forbids).
    private mutating func unsigned() throws(TakeSlowPath) -> UInt64 {
        let first = current
        guard ASCII.isDigit(first) else { throw TakeSlowPath() }
        position += 1
        var value = UInt64(first &- 0x30)
        while ASCII.isDigit(current) {
            guard value != 0 else { throw TakeSlowPath() }
            let (tens, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = tens.addingReportingOverflow(UInt64(current &- 0x30))
            guard !overflow, !carry else { throw TakeSlowPath() }
            value = sum
            position += 1
        }
        switch current {
        case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): throw TakeSlowPath()
        default: return value
        }
    }

    /// Consumes `null` if it comes next.
    private mutating func null() throws(TakeSlowPath) -> Bool {
        guard current == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    // MARK: Structure

    /// The byte at ``position``, or 0 past the end.
    private var current: UInt8 {
        @inline(__always) get { position < input.count ? input[position] : 0 }
    }

    private mutating func skipWhitespace() {
        while true {
            switch current {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8) throws(TakeSlowPath) {
        guard current == byte else { throw TakeSlowPath() }
        position += 1
    }

    /// After an opening bracket: skips whitespace, and consumes `closing` if the container is empty.
    private mutating func closes(_ closing: UInt8) -> Bool {
        skipWhitespace()
        guard current == closing else { return false }
        position += 1
        return true
    }

    /// After a member or element: true for a comma (another follows), false for `closing`.
    private mutating func separator(closing: UInt8) throws(TakeSlowPath) -> Bool {
        skipWhitespace()
        switch current {
        case ASCII.comma:
            position += 1
            skipWhitespace()
            return true
        case closing:
            position += 1
            return false
        default:
            throw TakeSlowPath()
        }
    }

    /// A member's key and its colon; the bytes are valid until the next string is read.
    private mutating func key() throws(TakeSlowPath) -> UnsafeBufferPointer<UInt8> {
        let key = try stringBytes(rawNonASCII: false)
        skipWhitespace()
        try expect(ASCII.colon)
        skipWhitespace()
        return key
    }

    private mutating func literal(_ word: StaticString) throws(TakeSlowPath) {
        for byte in word.bytes {
            try expect(byte)
        }
    }

    /// Skips a value of an unknown key, checking it is strict JSON.
    private mutating func skipValue(depth: Int) throws(TakeSlowPath) {
        guard depth <= TreeParser.maximumDepth else { throw TakeSlowPath() }
        switch current {
        case ASCII.quote:
            _ = try stringBytes(rawNonASCII: false)
        case ASCII.openBrace:
            position += 1
            if !closes(ASCII.closeBrace) {
                repeat {
                    _ = try key()
                    try skipValue(depth: depth + 1)
                } while try separator(closing: ASCII.closeBrace)
            }
        case ASCII.openBracket:
            position += 1
            if !closes(ASCII.closeBracket) {
                repeat {
                    try skipValue(depth: depth + 1)
                } while try separator(closing: ASCII.closeBracket)
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: try skipNumber()
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func skipNumber() throws(TakeSlowPath) {
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
        } else {
            try skipDigits()
        }
        if current == UInt8(ascii: ".") {
            position += 1
            try skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            try skipDigits()
        }
    }

    /// One or more digits.
    private mutating func skipDigits() throws(TakeSlowPath) {
        guard ASCII.isDigit(current) else { throw TakeSlowPath() }
        while ASCII.isDigit(current) { position += 1 }
    }

    // MARK: Strings

    /// A string's content, unescaped; valid until the next string is read.
    ///
    /// Without `rawNonASCII`, bytes above 0x7F outside escapes send the input to JSONDecoder
    /// (keys and ignored values are ASCII in practice, and this spares validating their UTF-8).
    /// With it, the caller validates the UTF-8.
    private mutating func stringBytes(rawNonASCII: Bool) throws(TakeSlowPath) -> UnsafeBufferPointer<UInt8> {
        try expect(ASCII.quote)
        let start = position
        while true {
            let byte = current
            if byte == ASCII.quote {
                position += 1
                return UnsafeBufferPointer(rebasing: input[start..<(position - 1)])
            }
            if byte == ASCII.backslash { return try unescapedString(from: start, rawNonASCII: rawNonASCII) }
            guard byte >= 0x20, byte < 0x80 || rawNonASCII else { throw TakeSlowPath() }
            position += 1
        }
    }

    /// The rest of a string that has escapes, copied into ``scratch`` as it is unescaped.
    private mutating func unescapedString(from start: Int, rawNonASCII: Bool) throws(TakeSlowPath) -> UnsafeBufferPointer<UInt8> {
        let buffer = scratch ?? UnsafeMutableBufferPointer<UInt8>.allocate(capacity: input.count - start)
        scratch = buffer
        var length = position - start
        _ = buffer.initialize(fromContentsOf: input[start..<position])
        while true {
            let byte = current
            position += 1
            switch byte {
            case ASCII.quote:
                return UnsafeBufferPointer(rebasing: buffer[0..<length])
            case ASCII.backslash:
                let escape = current
                position += 1
                let unescaped: UInt8
                switch escape {
                case ASCII.quote, ASCII.backslash, UInt8(ascii: "/"): unescaped = escape
                case UInt8(ascii: "b"): unescaped = 0x08
                case UInt8(ascii: "f"): unescaped = 0x0C
                case UInt8(ascii: "n"): unescaped = 0x0A
                case UInt8(ascii: "r"): unescaped = 0x0D
                case UInt8(ascii: "t"): unescaped = 0x09
                case UInt8(ascii: "u"):
                    for unit in try unicodeEscape().utf8 {
                        buffer[length] = unit
                        length += 1
                    }
                    continue
                default: throw TakeSlowPath()
                }
                buffer[length] = unescaped
                length += 1
            default:
                guard byte >= 0x20, byte < 0x80 || rawNonASCII else { throw TakeSlowPath() }
                buffer[length] = byte
                length += 1
            }
        }
    }

    /// The scalar of a `\uXXXX` escape whose `\u` has been read, joining a surrogate pair.
    /// A lone surrogate is left to JSONDecoder (which refuses it).
    private mutating func unicodeEscape() throws(TakeSlowPath) -> Unicode.Scalar {
        let unit = try hex4()
        var value = UInt32(unit)
        if (0xD800..<0xDC00).contains(unit) {
            try expect(ASCII.backslash)
            try expect(UInt8(ascii: "u"))
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw TakeSlowPath() }
            value = 0x10000 + (UInt32(unit - 0xD800) << 10 | UInt32(low - 0xDC00))
        }
        guard let scalar = Unicode.Scalar(value) else { throw TakeSlowPath() }
        return scalar
    }

    private mutating func hex4() throws(TakeSlowPath) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            let digit = ASCII.hexValue(current)
            guard digit < 16 else { throw TakeSlowPath() }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }
}
