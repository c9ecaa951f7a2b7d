@testable import BunkerCore
import BunkerTesting
import Foundation
import Testing

/// The hand-written tree coder against Foundation's: the same bytes out, the same trees (or the
/// same errors) in.
@Suite struct TreeCodingTests {
    // MARK: Encoding

    @Test(arguments: 1...64)
    func encodingMatchesJSONEncoderByteForByte(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed))
        let tree = TreeSamples.tree(using: &rng)
        let expected = try JSONCoding.encoder.encode(tree)
        let encoded = TreeCoding.encode(tree)
        #expect(encoded == expected, "\(text(encoded))\nis not\n\(text(expected))")
    }

    @Test func encodingEscapesEveryCharacterAsJSONEncoderDoes() throws {
        var nodes: [Node] = []
        for scalar in (0...0x7F).map({ Unicode.Scalar(UInt8($0)) }) {
            var node = TreeSamples.node(named: "a\(scalar)b", type: .symlink)
            node.linkTarget = "\(scalar)"
            nodes.append(node)
        }
        for name in ["é", "e\u{301}", "😀", "👩‍👩‍👧", "中文目录", "\u{2028}\u{2029}", "\u{FEFF}", "\u{FFFD}", "\u{10FFFF}", "a/b", "\"\\\"\\\\"] {
            nodes.append(TreeSamples.node(named: name, type: .file))
        }
        let tree = Tree(nodes: nodes)
        #expect(TreeCoding.encode(tree) == (try JSONCoding.encoder.encode(tree)))
    }

    @Test func encodingWritesExtremeIntegersAsJSONEncoderDoes() throws {
        var nodes: [Node] = []
        let extremes: [(UInt64, Int64, UInt32)] = [(.max, .min, .max), (0, .max, 0), ((1 << 53) + 1, -1, 1)]
        for (i, (unsigned, signed, small)) in extremes.enumerated() {
            var node = Node(name: "n\(i)", type: .file, mode: small, mtimeNanoseconds: signed, uid: small, gid: small)
            node.size = unsigned
            node.inode = unsigned
            node.device = unsigned
            nodes.append(node)
        }
        let tree = Tree(nodes: nodes)
        #expect(TreeCoding.encode(tree) == (try JSONCoding.encoder.encode(tree)))
    }

    /// The canonical form pinned down, so that Foundation changing its output cannot go unseen.
    @Test func encodingWritesTheCanonicalForm() {
        var file = Node(name: "q\"\\\u{0}\u{1F}\u{8}\t\n\u{C}\r\u{7F}/é", type: .file, mode: 0o644, mtimeNanoseconds: -5, uid: 0, gid: UInt32.max)
        file.content = []
        file.size = UInt64.max
        var link = Node(name: "l", type: .symlink, mode: 0o777, mtimeNanoseconds: Int64.min, uid: 1, gid: 2)
        link.linkTarget = "../a b"
        let tree = Tree(nodes: [file, link])
        #expect(String(decoding: TreeCoding.encode(tree), as: UTF8.self) == #"""
            {"nodes":[{"gid":2,"link_target":"../a b","mode":511,"mtime_ns":-9223372036854775808,"name":"l","type":"symlink","uid":1},\#
            {"content":[],"gid":4294967295,"mode":420,"mtime_ns":-5,"name":"q\"\\\u0000\u001f\b\t\n\f\r\#u{7F}/é","size":18446744073709551615,"type":"file","uid":0}]}
            """#)
        #expect(TreeCoding.encode(Tree(nodes: [])) == Data(#"{"nodes":[]}"#.utf8))
    }

    /// Format version 3: names and link targets that are not UTF-8 are kept as bytes (base64),
    /// beside a readable form; the encoding is still JSONEncoder's, and decoding gives the bytes back.
    @Test func namesThatAreNotUTF8RoundTripAsBytes() throws {
        var file = Node(nameBytes: [0x72, 0xE9, 0x2E, 0x74, 0x78, 0x74], type: .file, mode: 0o644, mtimeNanoseconds: 1, uid: 0, gid: 0)
        file.content = []
        var link = Node(nameBytes: Array("link".utf8), type: .symlink, mode: 0o777, mtimeNanoseconds: 2, uid: 0, gid: 0)
        link.linkTargetBytes = [0x2E, 0x2E, 0x2F, 0xFF]
        var device = Node(name: "zero", type: .characterDevice, mode: 0o600, mtimeNanoseconds: 3, uid: 0, gid: 0)
        device.rdev = 0x105
        let tree = Tree(nodes: [file, link, device])
        let data = TreeCoding.encode(tree)
        #expect(data == (try JSONCoding.encoder.encode(tree)))
        #expect(String(decoding: data, as: UTF8.self).contains(#""name":"r\#u{FFFD}.txt","name_bytes":"cukudHh0""#))
        let decoded = try TreeCoding.decode(data)
        #expect(decoded == tree)
        #expect(decoded.node(nameBytes: [0x72, 0xE9, 0x2E, 0x74, 0x78, 0x74])?.type == .file)
        #expect(decoded.node(named: "r\u{FFFD}.txt") == nil, "the readable form is not the name")
        #expect(decoded.node(named: "link")?.linkTargetBytes == [0x2E, 0x2E, 0x2F, 0xFF])
        #expect(decoded.node(named: "zero")?.rdev == 0x105)
    }

    @Test func encodingPastTheSizeGuessedUpFrontMatchesJSONEncoder() throws {
        // The writer reserves about 192 bytes a node: names and link targets far longer than
        // that make it grow its buffer many times over (and escapes make it grow byte by byte).
        var nodes: [Node] = []
        for i in 0..<40 {
            var node = TreeSamples.node(named: String(repeating: "n\(i)-", count: 300 + 50 * i), type: .symlink)
            node.linkTarget = String(repeating: "\u{1}\"é", count: 500 + 100 * i)
            nodes.append(node)
        }
        let tree = Tree(nodes: nodes)
        let encoded = TreeCoding.encode(tree)
        #expect(encoded.count > 40 * 192 * 10)
        #expect(encoded == (try JSONCoding.encoder.encode(tree)))
        #expect(try TreeCoding.decode(encoded) == tree)
    }

    @Test(arguments: 1...24)
    func streamingGivesTheSameBytesInPieces(seed: Int) {
        var rng = SeededGenerator(seed: UInt64(seed))
        let tree = TreeSamples.tree(using: &rng)
        var pieces: [Data] = []
        let length = TreeCoding.encode(tree, streamingTo: { pieces.append(Data($0)) })
        let whole = TreeCoding.encode(tree)
        #expect(pieces.reduce(Data(), +) == whole)
        #expect(length == whole.count)
    }

    @Test func streamingALargeFileHandsOverPiecesOfAboutAMebibyte() {
        let tree = TreeSamples.largeFile(ids: 110_000)
        var pieces: [Data] = []
        let length = TreeCoding.encode(tree, streamingTo: { pieces.append(Data($0)) })
        let whole = TreeCoding.encode(tree)
        #expect(length == whole.count && pieces.reduce(Data(), +) == whole)
        #expect(pieces.count == (whole.count + (1 << 20) - 1) >> 20 || pieces.count == whole.count >> 20 + 1)
        #expect(pieces.dropLast().allSatisfy { $0.count >= 1 << 20 && $0.count < (1 << 20) + 67 })
    }

    @Test func aListingTooLargeToHoldWholeIsStoredAsIfEncodedWhole() async throws {
        try await withTemporaryDirectory { dir in
            let repo = try await TestRepository.create(at: dir + "/repo")
            let tree = TreeSamples.largeFile(ids: 80_000)
            #expect(TreeCoding.estimatedSize(of: tree) >= TreeSaver.streamedListing)
            let json = TreeCoding.encode(tree)
            let session = WriteSession(repository: repo)
            let blobs = BlobSaver(session: session, repository: repo, compressionLevel: 3, progress: nil)
            let id = try await TreeSaver(blobs: blobs).save(tree)
            #expect(id == repo.key.blobID(of: json), "the id of the JSON encoded whole")
            #expect(try await TreeSaver(blobs: blobs).save(tree) == id)
            try await blobs.flush()
            try await session.finish()

            let reopened = try await TestRepository.open(at: dir + "/repo")
            #expect(try await reopened.loadTree(id) == tree)
            let location = try #require(reopened.index.lookup(id))
            #expect(Int(location.blob.rawLength) == json.count)
            #expect(Int(location.blob.length) < json.count, "stored compressed")
            #expect(reopened.index.count == 1, "saved once")
            let check = try await Checker(repository: reopened).check(readData: true)
            #expect(check.ok && check.packsRead == 1)
        }
    }

    @Test func encodingALargeFileMatchesJSONEncoder() throws {
        let tree = TreeSamples.largeFile(ids: 110_000)
        #expect(TreeCoding.encode(tree) == (try JSONCoding.encoder.encode(tree)))
    }

    // MARK: Decoding

    @Test(arguments: 1...64)
    func decodingRoundTripsWithTheFastPath(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed) + 1000)
        let tree = TreeSamples.tree(using: &rng)
        let data = TreeCoding.encode(tree)
        let parsed = try #require(TreeCoding.parse(data), "the canonical form takes the fast path")
        #expect(parsed == tree)
        // `==` on strings ignores Unicode normalization; the bytes must be the same too.
        #expect(try JSONCoding.encoder.encode(parsed) == data)
        #expect(parsed == (try JSONCoding.decoder.decode(Tree.self, from: data)))
        #expect(try outlined(data) == tree.nodes)
    }

    /// An outline finds a node by name as the decoded tree does, decoding only those it visits.
    @Test(arguments: 1...16)
    func anOutlineFindsNodesByNameLikeTheTree(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed) + 3000)
        let tree = TreeSamples.tree(using: &rng)
        let outline = try TreeCoding.outline(TreeCoding.encode(tree))
        #expect(outline.kinds == tree.nodes.map(\.type))
        for node in tree.nodes {
            #expect(outline.node(named: node.name) == tree.node(named: node.name))
        }
        #expect(outline.node(named: "no such name \(seed)") == nil)
    }

    @Test func decodingALargeFileRoundTrips() throws {
        let tree = TreeSamples.largeFile(ids: 110_000)
        #expect(TreeCoding.parse(TreeCoding.encode(tree)) == tree)
    }

    @Test func decodingKeepsTheStoredOrderOfNodes() throws {
        let json = #"{"nodes":[\#(TreeSamples.dirJSON(name: "b")),\#(TreeSamples.dirJSON(name: "a"))]}"#
        let tree = try #require(TreeCoding.parse(Data(json.utf8)))
        #expect(tree.nodes.map(\.name) == ["b", "a"])
        #expect(tree == (try JSONCoding.decoder.decode(Tree.self, from: Data(json.utf8))))
    }

    /// Valid JSON in other spellings than the canonical one, all within the fast path.
    @Test(arguments: [
        // Whitespace everywhere JSON allows it.
        " \n{ \"nodes\" :\t[ {\r\n\"name\" : \"a\" , \"type\" : \"dir\" , \"mode\" : 493 , \"mtime_ns\" : 0 , \"uid\" : 0 , \"gid\" : 0 } ] } \n",
        // Keys in any order; uppercase hex ids.
        #"{"nodes":[{"uid":7,"type":"file","size":3,"sha256":"x","name":"f","mtime_ns":-1,"mode":420,"inode":9,"gid":8,"device":1,"content":["ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"]}]}"#,
        // Escapes of every kind, in names, link targets, keys and ids.
        #"{"nodes":[{"n\u0061me":"caf\u00e9 \u00C9 \ud83d\ude00 \uD83D\uDE00 \/ \"q\" \\ \b\f\n\r\t \u0000 \u001F","type":"symlink","mode":511,"mtime_ns":1,"uid":0,"gid":0,"link_target":"\u002e\u002E\/x"}]}"#,
        #"{"nodes":[{"name":"d","type":"\u0064ir","mode":493,"mtime_ns":1,"uid":0,"gid":0,"subtree":"\u0030123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}"#,
        // Unknown keys, with values of every kind, are ignored, even those much like known ones.
        #"{"version":2,"nodes":[{"sizz":1,"inodz":2,"devicz":3,"sha25x":"x","contenz":[],"subtrex":"","link_targex":"","Size":4,"xattrs":{"a":[1,-2.5e+3,0.5,0,-0,1E-2,true,false,null,{"b":"c\u00e9","":[]}]},"name":"a","type":"dir","mode":0,"mtime_ns":0,"uid":0,"gid":0,"z":"\""}],"extra":{}}"#,
        // `null` for an optional is absence.
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"size":null,"inode":null,"device":null,"content":null,"sha256":null,"subtree":null,"link_target":null}]}"#,
        // Raw non-ASCII in a name, -0, the extremes.
        #"{"nodes":[{"name":"中文 😀 e\#u{301}","type":"file","mode":4294967295,"mtime_ns":-0,"uid":4294967295,"gid":0,"size":18446744073709551615,"content":[]}]}"#,
        #"{"nodes":[{"name":"m","type":"file","mode":0,"mtime_ns":-9223372036854775808,"uid":0,"gid":0}, {"name":"n","type":"file","mode":0,"mtime_ns":9223372036854775807,"uid":0,"gid":0}]}"#,
        #"{ "nodes" : [ ] }"#,
    ])
    func decodingAcceptsOtherSpellingsLikeJSONDecoder(json: String) throws {
        let data = Data(json.utf8)
        let expected = try JSONCoding.decoder.decode(Tree.self, from: data)
        let parsed = try #require(TreeCoding.parse(data), "the fast path handles this spelling")
        #expect(parsed == expected)
        #expect(try JSONCoding.encoder.encode(parsed) == (try JSONCoding.encoder.encode(expected)))
        #expect(try outlined(data) == expected.nodes)
    }

    /// Valid for JSONDecoder but left to it: the result is JSONDecoder's.
    @Test(arguments: [
        #"{"nodes":[{"name":"a","type":"file","mode":420.0,"mtime_ns":1e3,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","name":"b","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":-0,"gid":0}]}"#,
        #"{"nodes":[],}"#,
        "\u{FEFF}{\"nodes\":[]}",
        #"{"nodes":[],"ünknown":1}"#,
        #"{"nodes":[],"x":"\ud800"}"#,
        #"{"nodes":[],"x":[01]}"#,
        #"{"nodes":[],"x":"# + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}",
    ])
    func decodingLeavesUnusualSpellingsToJSONDecoder(json: String) throws {
        let data = Data(json.utf8)
        let expected = try JSONCoding.decoder.decode(Tree.self, from: data)
        #expect(TreeCoding.parse(data) == nil)
        let decoded = try TreeCoding.decode(data)
        #expect(decoded == expected)
        #expect(try JSONCoding.encoder.encode(decoded) == (try JSONCoding.encoder.encode(expected)))
        #expect(try outlined(data) == expected.nodes)
    }

    @Test(arguments: [
        "",
        "[]",
        #"{}"#,
        #"{"nodes":null}"#,
        #"{"nodes":{}}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}x"#,
        #"{"nodes":[{"name":"a","type":"door","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"File","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":5,"type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":null,"type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":"420","mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":-1,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":4294967296,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":9223372036854775808,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":-9223372036854775809,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"size":18446744073709551616}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":01,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"content":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"content":["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"]}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"content":["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"]}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"content":["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"]}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"content":[null]}]}"#,
        #"{"nodes":[{"name":"a","type":"dir","mode":0,"mtime_ns":0,"uid":0,"gid":0,"subtree":"xyz"}]}"#,
        #"{"nodes":[{"name":"\ud83d","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"\ude00\ud83d","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"\ud83d\u0041","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"\ud83dx","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"\x","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"\u12","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        "{\"nodes\":[{\"name\":\"a\tb\",\"type\":\"file\",\"mode\":0,\"mtime_ns\":0,\"uid\":0,\"gid\":0}]}",
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0} {"name":"b","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#,
        #"{"nodes":[{"name":"a","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0,"x":tru}]}"#,
    ])
    func decodingRefusesWhatJSONDecoderRefuses(json: String) {
        refusesLikeJSONDecoder(Data(json.utf8))
    }

    @Test(arguments: ["name", "type", "mode", "mtime_ns", "uid", "gid"])
    func decodingRefusesANodeWithoutARequiredKey(key: String) {
        let members = [#""name":"a""#, #""type":"file""#, #""mode":0"#, #""mtime_ns":0"#, #""uid":0"#, #""gid":0"#]
        let json = #"{"nodes":[{"# + members.filter { !$0.hasPrefix("\"\(key)\"") }.joined(separator: ",") + "}]}"
        refusesLikeJSONDecoder(Data(json.utf8))
    }

    @Test func decodingRefusesInvalidUTF8InANameLikeJSONDecoder() {
        for bad: [UInt8] in [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80]] {
            let json = Array(#"{"nodes":[{"name":""#.utf8) + bad + Array(#"","type":"file","mode":0,"mtime_ns":0,"uid":0,"gid":0}]}"#.utf8)
            refusesLikeJSONDecoder(Data(json))
        }
    }

    /// Damaged canonical JSON: whatever either decoder makes of it, the other makes the same.
    @Test(arguments: 1...16)
    func decodingAgreesWithJSONDecoderOnDamagedInput(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed) + 2000)
        let bytes = [UInt8](TreeCoding.encode(TreeSamples.tree(using: &rng)))
        let replacements = Array(#""\,:{}[] 09afAFG-+.eEn"#.utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xFF]
        for _ in 0..<200 {
            var damaged = bytes
            let at = Int.random(in: 0..<damaged.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: damaged.removeSubrange(at...)
            case 1: damaged.remove(at: at)
            case 2: damaged.insert(replacements.randomElement(using: &rng)!, at: at)
            default: damaged[at] = replacements.randomElement(using: &rng)!
            }
            let data = Data(damaged)
            let expected = Result { try JSONCoding.decoder.decode(Tree.self, from: data) }
            let decoded = Result { try TreeCoding.decode(data) }
            let outline = Result { try outlined(data) }
            switch (outline, expected) {
            case let (.success(nodes), .success(other)): #expect(nodes == other.nodes, "\(text(data))")
            case let (.failure(error), .failure(other)): #expect("\(error)" == "\(other)", "\(text(data))")
            default: Issue.record("outline: \(outline), JSONDecoder: \(expected), for \(text(data))")
            }
            switch (decoded, expected) {
            case let (.success(tree), .success(other)):
                #expect(tree == other, "\(text(data))")
                #expect(try JSONCoding.encoder.encode(tree) == (try JSONCoding.encoder.encode(other)), "\(text(data))")
            case let (.failure(error), .failure(other)):
                #expect("\(error)" == "\(other)", "\(text(data))")
            default:
                Issue.record("TreeCoding: \(decoded), JSONDecoder: \(expected), for \(text(data))")
            }
        }
    }

    // MARK: Speed

    /// Opt-in (`BUNKER_BENCHMARK=1 swift test -c release --filter TreeCoding`): the reason this
    /// coder exists. In a debug build the hand-written code is not optimized and Foundation is.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["BUNKER_BENCHMARK"] != nil, "set BUNKER_BENCHMARK to run"))
    func codingIsFiveTimesFasterThanFoundation() throws {
        var rng = SeededGenerator(seed: 7)
        for (label, tree) in [("one file of 110,000 chunks", TreeSamples.largeFile(ids: 110_000)),
                              ("2,000 files", TreeSamples.directory(files: 2_000, using: &rng))] {
            let data = TreeCoding.encode(tree)
            let encoding = try speedUp(label + ", encode") { _ = TreeCoding.encode(tree) } over: { _ = try JSONCoding.encoder.encode(tree) }
            let decoding = try speedUp(label + ", decode") { _ = try TreeCoding.decode(data) } over: { _ = try JSONCoding.decoder.decode(Tree.self, from: data) }
            #expect(encoding >= 5)
            #expect(decoding >= 5)
        }
    }

    // MARK: Helpers

    /// Every node of the blob, taken one at a time from its outline.
    private func outlined(_ data: Data) throws -> [Node] {
        let outline = try TreeCoding.outline(data)
        return (0..<outline.count).map(outline.node(at:))
    }

    private func refusesLikeJSONDecoder(_ data: Data, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(TreeCoding.parse(data) == nil, sourceLocation: sourceLocation)
        var expected: (any Error)?
        do { _ = try JSONCoding.decoder.decode(Tree.self, from: data) } catch { expected = error }
        #expect(expected != nil, "JSONDecoder refuses it too", sourceLocation: sourceLocation)
        do {
            let outline = try TreeCoding.outline(data)
            Issue.record("outlined \(outline.count) nodes from \(text(data))", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)" == "\(expected.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        }
        do {
            let tree = try TreeCoding.decode(data)
            Issue.record("decoded \(tree) from \(text(data))", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)" == "\(expected.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        }
    }

    /// How many times faster `fast` is than `slow` (best of five runs each); prints both times.
    private func speedUp(_ label: String, _ fast: () throws -> Void, over slow: () throws -> Void) throws -> Double {
        func best(_ body: () throws -> Void) throws -> Double {
            var times: [Double] = []
            for _ in 0..<5 {
                let start = ContinuousClock.now
                try body()
                let elapsed = (ContinuousClock.now - start).components
                times.append(Double(elapsed.seconds) * 1e3 + Double(elapsed.attoseconds) / 1e15)
            }
            return times.min()!
        }
        let fastMS = try best(fast)
        let slowMS = try best(slow)
        print("\(label): Foundation \(String(format: "%.2f", slowMS)) ms, TreeCoding \(String(format: "%.2f", fastMS)) ms, \(String(format: "%.1f", slowMS / fastMS))×")
        return slowMS / fastMS
    }

    /// The JSON quoted, for messages.
    private func text(_ data: Data) -> String {
        String(decoding: data, as: UTF8.self).debugDescription
    }
}

/// Trees that exercise every corner of the format.
private enum TreeSamples {
    static func tree(using rng: inout SeededGenerator) -> Tree {
        let nodes = (0..<Int.random(in: 0...12, using: &rng)).map { _ in node(using: &rng) }
        // Sorted as a backup writes them, or in any order: neither coder sorts.
        if Bool.random(using: &rng) { return Tree(nodes: nodes) }
        var tree = Tree(nodes: [])
        tree.nodes = nodes
        return tree
    }

    static func node(using rng: inout SeededGenerator) -> Node {
        let type = [Node.Kind.file, .directory, .symlink, .fifo, .socket, .characterDevice, .blockDevice].randomElement(using: &rng)!
        var node = Node(name: name(using: &rng), type: type, mode: uint32(using: &rng), mtimeNanoseconds: int64(using: &rng),
                        uid: uint32(using: &rng), gid: uint32(using: &rng))
        if Bool.random(using: &rng) { node.size = uint64(using: &rng) }
        if Bool.random(using: &rng) { node.inode = uint64(using: &rng) }
        if Bool.random(using: &rng) { node.device = uint64(using: &rng) }
        if Bool.random(using: &rng) { node.rdev = uint64(using: &rng) }
        if Bool.random(using: &rng) { node.content = (0..<[0, 1, 3, 40].randomElement(using: &rng)!).map { _ in id(using: &rng) } }
        if Bool.random(using: &rng) { node.sha256 = Bool.random(using: &rng) ? id(using: &rng).hex : name(using: &rng) }
        if Bool.random(using: &rng) { node.subtree = id(using: &rng) }
        if Bool.random(using: &rng) { node.linkTarget = name(using: &rng) }
        return node
    }

    static func node(named name: String, type: Node.Kind) -> Node {
        Node(name: name, type: type, mode: 0o644, mtimeNanoseconds: 1_795_311_126_408_840_812, uid: 1000, gid: 1000)
    }

    /// Pieces of names: every character JSON escapes, and UTF-8 of every length.
    private static let pieces: [String] = (0...0x20).map { String(Unicode.Scalar(UInt8($0))) }
        + ["\"", "\\", "/", "\u{7F}", "a", "Z", "0", ".", " ", "é", "e\u{301}", "\u{301}", "😀", "👩‍👩‍👧", "中文", "\u{2028}", "\u{FEFF}", "\u{FFFD}", "\u{10FFFF}", "\\u0041", "\\/"]

    static func name(using rng: inout SeededGenerator) -> String {
        (0..<Int.random(in: 0...10, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
    }

    static func id(using rng: inout SeededGenerator) -> ID {
        ID(bytes: rng.bytes(32))
    }

    private static func uint64(using rng: inout SeededGenerator) -> UInt64 {
        [0, 1, 9, 10, 1 << 53, (1 << 53) + 1, UInt64.max - 1, UInt64.max, rng.next(), rng.next() >> 20].randomElement(using: &rng)!
    }

    private static func uint32(using rng: inout SeededGenerator) -> UInt32 {
        [0, 1, 0o644, 0o4755, UInt32.max, UInt32(truncatingIfNeeded: rng.next())].randomElement(using: &rng)!
    }

    private static func int64(using rng: inout SeededGenerator) -> Int64 {
        [0, -1, 1, Int64.min, Int64.max, Int64.min + 1, Int64(bitPattern: rng.next()), 1_795_311_126_408_840_812].randomElement(using: &rng)!
    }

    /// A tree whose one node is a file of `ids` chunks.
    static func largeFile(ids: Int) -> Tree {
        var rng = SeededGenerator(seed: 42)
        var node = Node(name: "disk.img", type: .file, mode: 0o600, mtimeNanoseconds: 1_795_311_126_408_840_812, uid: 0, gid: 0)
        node.content = (0..<ids).map { _ in id(using: &rng) }
        node.size = UInt64(ids) * 1_048_576
        node.inode = 1_835_013
        node.device = 2049
        node.sha256 = id(using: &rng).hex
        return Tree(nodes: [node])
    }

    /// A directory of ordinary small files, one or two chunks each.
    static func directory(files: Int, using rng: inout SeededGenerator) -> Tree {
        Tree(nodes: (0..<files).map { i in
            var node = Node(name: "file-\(i).txt", type: .file, mode: 0o644, mtimeNanoseconds: 1_795_311_126_408_840_812 + Int64(i),
                            uid: 1000, gid: 1000)
            node.content = (0..<(i % 2 + 1)).map { _ in id(using: &rng) }
            node.size = UInt64(i * 997)
            node.inode = UInt64(1_835_013 + i)
            node.device = 2049
            node.sha256 = id(using: &rng).hex
            return node
        })
    }

    /// A directory node's JSON in canonical form.
    static func dirJSON(name: String) -> String {
        #"{"gid":0,"mode":493,"mtime_ns":0,"name":"\#(name)","subtree":"\#(String(repeating: "ab", count: 32))","type":"dir","uid":0}"#
    }
}
