import BunkerCore
import Foundation

/// Flips one byte in the middle of the largest pack of a local repository (a disk's silent
/// corruption); returns the pack's file name.
@discardableResult
public func damageLargestPack(in repo: String) throws -> String {
    let files = FileManager.default.enumerator(atPath: repo + "/data")?.compactMap { $0 as? String } ?? []
    let sized = files.compactMap { name -> (String, Int)? in
        let path = repo + "/data/" + name
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), attributes[.type] as? FileAttributeType == .typeRegular,
              let size = (attributes[.size] as? NSNumber)?.intValue, size > 0 else { return nil }
        return (path, size)
    }
    guard let (path, size) = sized.max(by: { $0.1 < $1.1 }) else { throw FixtureError("\(repo) holds no pack to damage") }
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(size / 2))
    guard let byte = try handle.read(upToCount: 1)?.first else { throw FixtureError("cannot read \(path)") }
    try handle.seek(toOffset: UInt64(size / 2))
    try handle.write(contentsOf: Data([byte ^ 0xFF]))
    return (path as NSString).lastPathComponent
}

/// Flips one bit in the middle of the sealed bytes of `blob` (its unit: for a bundle member, the
/// bundle) in the local repository at `path`, which `repository` has open.
public func damageBlob(_ blob: ID, of repository: Repository, at path: String) throws {
    guard let location = repository.index.lookup(blob) else { throw FixtureError("blob \(blob.short) is in no index") }
    let file = path + "/data/" + String(location.pack.hex.prefix(2)) + "/" + location.pack.hex
    var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
    bytes[Int(location.blob.offset) + Int(location.blob.length) / 2] ^= 0x01
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
    try bytes.write(to: URL(fileURLWithPath: file))
}
