import Foundation

extension Checker {
    /// On a repository under object lock, probes the bucket again (a setting changed since
    /// `init`, a bucket policy, a server upgrade can all undo immutability) and reports a bucket
    /// that deleted a retained version as an error: the repository is not immutable.
    func checkObjectLock(_ report: inout CheckReport) async throws {
        guard let lock = repository.storage.capability(ObjectLockStorage.self) else { return }
        // The probe writes an object and tries to delete it: not through read-only credentials.
        if repository.isReadOnly {
            report.warnings.append("The repository is open read-only, so whether its bucket still enforces \(lock.settings.mode.rawValue) object lock was not probed; run `bunker verify` without --read-only to probe it.")
            return
        }
        let probe = try await lock.probe()
        report.objectLock = probe
        guard !probe.enforced else { return }
        report.errors.append(CheckIssue(
            kind: "lock_not_enforced", object: "config",
            message: "The repository is configured for \(lock.settings.mode.rawValue) object lock of \(lock.settings.days) days, but the bucket does not enforce it: \(probe.detail) Its backups can be deleted by anyone holding the credentials. Move the repository to a bucket created with object lock enabled on a server that enforces it (`bunker init --object-lock` there, then `bunker copy`)."))
    }
}
