import Foundation

extension Checker {
    /// Walks every source's archived WAL per timeline and names each gap (a segment missing
    /// between the first and the last archived: recovery cannot pass it); with `readData`, reads
    /// every WAL object, checks its SHA-256 against its name, authenticates and decompresses it
    /// and checks the file's own SHA-256.
    func checkWal(_ report: inout CheckReport, readData: Bool) async throws {
        report.wal = try await WalArchive.summaries(of: repository)
        for summary in report.wal {
            for gap in summary.gaps {
                let what = gap.count == 1 ? "segment \(gap.firstMissing) is" : "\(gap.count) segments, \(gap.firstMissing) to \(gap.lastMissing), are"
                report.errors.append(CheckIssue(
                    kind: "wal_gap", object: "wal/\(WalObject.scope(of: summary.source))-\(gap.firstMissing)",
                    message: "Source \(summary.source), timeline \(gap.timeline): WAL \(what) missing from the archive, so no point-in-time restore can pass \(gap.firstMissing). Take a new base backup (`bunker backup --source \(summary.source)`) so that the window starts again after the gap."))
            }
        }
        guard readData else { return }
        for info in try await repository.storage.list(.wal) {
            guard case .file(let scope, _, _)? = WalObject.Name(info.handle.name) else { continue }
            let archive = WalArchive(repository: repository, source: WalArchive.source(ofScope: scope))
            do {
                let plaintext = try await archive.loadChecked(info.handle)
                _ = try WalObject.decode(plaintext, object: info.handle.name)
                report.walObjectsRead += 1
                report.bytesRead += UInt64(info.size)
            } catch let error as BunkerError where error.code == .corruptObject || error.code == .unsupportedFormat {
                report.errors.append(CheckIssue(kind: "damaged_wal", object: "wal/\(info.handle.name)", message: error.message))
            }
        }
    }
}
