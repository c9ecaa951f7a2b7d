import BunkerCore
import BunkerS3
import Foundation

/// Opens a repository's storage from its settings: the one place that knows that an `s3://`
/// location takes the endpoint, region and path style of the repository it belongs to, so that
/// a primary on one S3 server and an off-site copy on another can be open at once.
public enum RepositoryStorage {
    /// The storage at `location` (a directory, `local:PATH`, or `s3://BUCKET/PREFIX`), with
    /// `settings`' object-store settings over the AWS environment; behind ``ReadOnlyStorage``
    /// when `settings` say `read_only`.
    public static func storage(_ location: String, settings: Configuration.RepositorySettings, create: Bool = false) throws -> any Storage {
        let storage: any Storage
        if location.lowercased().hasPrefix("s3://") {
            storage = try S3Backend.open(location, settings: S3Settings(endpoint: settings.endpoint, region: settings.region, pathStyle: settings.pathStyle))
        } else {
            storage = try StorageLocation.storage(for: location, create: create)
        }
        return settings.readOnly == true ? ReadOnlyStorage(storage) : storage
    }

    /// Opens the repository at `location`.
    public static func open(
        _ location: String, settings: Configuration.RepositorySettings, password: String, loadIndex: Bool = true
    ) async throws -> Repository {
        try await Repository.open(storage: storage(location, settings: settings), password: password, loadIndex: loadIndex)
    }
}

extension BunkerService {
    /// Opens `[repositories.NAME]` with its `password_file`: a server or a schedule cannot ask
    /// for a password.
    public func openRepository(named name: String) async throws -> Repository {
        let named = try configuration.namedRepository(name)
        guard let file = named.settings.passwordFile else {
            throw BunkerError(.invalidArgument, "[repositories.\(name)] has no password_file; a schedule or the server needs one to open it.")
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw BunkerError(.invalidArgument, "Cannot read the password file \(file) of [repositories.\(name)].")
        }
        let location = named.settings.location ?? ""
        return try await RepositoryStorage.open(location, settings: named.settings, password: text.trimmingCharacters(in: .newlines))
    }
}
