import Crypto
import Foundation

/// The repository's secret: an AES-256-GCM key that encrypts every object, and an HMAC-SHA-256
/// key that names every blob by its plaintext without revealing the plaintext's plain hash.
///
/// Generated at random when the repository is created; stored only wrapped by password-derived
/// keys (``KeyFile``).
public struct MasterKey: Sendable {
    let encryption: SymmetricKey
    let mac: SymmetricKey
    /// HMAC's state after the key, copied for each blob: setting it up from the key hashed two
    /// padded key blocks and built two key arrays for every blob, two of the 68 SHA-256 blocks a
    /// database's 4 KiB page chunk took.
    private let keyed: HMAC<SHA256>
    /// The same HMAC on ``SHA256Stream``s, where the processor has the SHA extensions: a backup
    /// hashes each chunk for its id in the same pass as the file's SHA-256 (``FileSaver``), a
    /// verify each blob with its pack's SHA-256 (``PackHashing``).
    let pairedIDs: KeyedSHA256?

    /// A fresh random key.
    public static func generate() -> MasterKey {
        MasterKey(encryption: SymmetricKey(size: .bits256), mac: SymmetricKey(size: .bits256))
    }

    init(encryption: SymmetricKey, mac: SymmetricKey) {
        self.encryption = encryption
        self.mac = mac
        self.keyed = HMAC<SHA256>(key: mac)
        self.pairedIDs = SHA256Stream.isAvailable ? KeyedSHA256(key: mac) : nil
    }

    /// Whether `other` is the same key material: two repositories made with
    /// `--copy-params-from` share it, so their blob ids agree and their packs read alike.
    public func sharesIdentity(with other: MasterKey) -> Bool {
        func bytes(_ key: SymmetricKey) -> [UInt8] { key.withUnsafeBytes { Array($0) } }
        return bytes(mac) == bytes(other.mac) && bytes(encryption) == bytes(other.encryption)
    }

    /// The keyed id of a blob's plaintext.
    public func blobID<D: DataProtocol>(of plaintext: D) -> ID {
        var hasher = keyed
        hasher.update(data: plaintext)
        return ID(digest: hasher.finalize())
    }

    /// A blob id computed over plaintext handed over piece by piece: `finalize()` gives the
    /// digest ``blobID(of:)`` gives for the whole.
    func blobIDHasher() -> HMAC<SHA256> {
        keyed
    }

    /// Encrypts `plaintext`: a random 12-byte nonce, the ciphertext, the 16-byte tag.
    public func seal<D: DataProtocol>(_ plaintext: D) throws -> Data {
        let box = try AES.GCM.seal(plaintext, using: encryption)
        return box.combined!
    }

    /// Authenticates and decrypts what ``seal(_:)`` produced.
    public func open<D: DataProtocol>(_ sealed: D) throws -> Data {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return try AES.GCM.open(box, using: encryption)
        } catch {
            throw BunkerError(.corruptObject, "Ciphertext failed authentication: the object was altered or damaged.", cause: error)
        }
    }

    /// The overhead ``seal(_:)`` adds to every plaintext.
    public static let sealOverhead = 12 + 16

    struct Encoded: Codable {
        var encryption: Data
        var mac: Data
    }

    var encoded: Encoded {
        Encoded(encryption: encryption.withUnsafeBytes { Data($0) }, mac: mac.withUnsafeBytes { Data($0) })
    }

    init(_ encoded: Encoded) throws {
        guard encoded.encryption.count == 32, encoded.mac.count == 32 else {
            throw BunkerError(.corruptObject, "The master key in the key file has the wrong length.")
        }
        self.init(encryption: SymmetricKey(data: encoded.encryption), mac: SymmetricKey(data: encoded.mac))
    }
}
