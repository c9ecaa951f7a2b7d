import BunkerCore
import BunkerSources
import Foundation

extension Configuration {
    /// A local repository must not be inside a file tree that a restore replaces: a restore in
    /// place would move the live repository, and the safety snapshot just written into it, aside
    /// and delete it. Paths are compared with their symbolic links resolved.
    ///
    /// `location` is a repository location as users write it (`/backups`, `local:/backups`);
    /// other schemes (object storage) are never inside a source.
    public func checkRepositoryIsOutsideSources(_ location: String?) throws {
        guard var path = location, !path.isEmpty else { return }
        if path.hasPrefix("local:") { path.removeFirst("local:".count) }
        guard !path.contains("://") else { return }
        if let source = sourceContaining(Self.absolute(path, relativeTo: nil)) {
            throw BunkerError(.invalidArgument, "The repository \(path) is inside source \(source.name) (\(source.tree)), which a restore in place replaces, repository and safety snapshot included; put the repository outside every files source.")
        }
    }

    /// A restore "to another place" writes only outside what Bunker protects and keeps: not into
    /// a live files source (the next backup would take the restored copies for the clinic's own
    /// files, and a restore in place would delete them), not into the repository `repository`
    /// (a local one's root) and not into the data directory (catalog and audit trail). Paths
    /// are compared with their symbolic links resolved.
    public func checkRestoreTargetIsOutsideLiveData(_ target: String, repository: String?) throws {
        let resolved = Self.resolvingSymlinks(Self.absolute(target, relativeTo: nil))
        let advice = "restore into a directory outside every source, the repository and the data directory, like /srv/restores/ticket-4711."
        if let source = sourceContaining(resolved) {
            throw BunkerError(.invalidArgument, "\(target) is inside source \(source.name) (\(source.tree)), the live data: a restore to another place never writes there; \(advice)")
        }
        for (what, place) in [("the repository", repository), ("Bunker's data directory", dataDirectory)] {
            guard let place else { continue }
            let kept = Self.resolvingSymlinks(Self.absolute(place, relativeTo: nil))
            if resolved == kept || resolved.hasPrefix(kept.hasSuffix("/") ? kept : kept + "/") {
                throw BunkerError(.invalidArgument, "\(target) is inside \(what) (\(place)): \(advice)")
            }
        }
    }

    /// The source whose replaced tree holds `path` (links resolved), if any: its name and tree.
    func sourceContaining(_ path: String) -> (name: String, tree: String)? {
        let resolved = Self.resolvingSymlinks(path)
        for source in sources {
            guard let replaced = source.replacedTree else { continue }
            let tree = Self.resolvingSymlinks(replaced)
            if resolved == tree || resolved.hasPrefix(tree.hasSuffix("/") ? tree : tree + "/") { return (source.name, replaced) }
        }
        return nil
    }
}
