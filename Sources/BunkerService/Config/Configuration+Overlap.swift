import BunkerCore
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
            throw BunkerError(.invalidArgument, "The repository \(path) is inside source \(source.name) (\(source.path ?? "")), which a restore in place replaces, repository and safety snapshot included; put the repository outside every files source.")
        }
    }

    /// The files source whose tree holds `path` (links resolved), if any.
    func sourceContaining(_ path: String) -> SourceSettings? {
        let resolved = Self.resolvingSymlinks(path)
        for source in sources where source.kind == .files {
            guard let named = source.path else { continue }
            let tree = Self.resolvingSymlinks(named)
            if resolved == tree || resolved.hasPrefix(tree.hasSuffix("/") ? tree : tree + "/") { return source }
        }
        return nil
    }
}
