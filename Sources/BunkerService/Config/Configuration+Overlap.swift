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
