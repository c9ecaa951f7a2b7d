import BunkerCore

/// One source's place in an export archive (a ZIP in the Clinical Dashboard API's layout), as
/// the source fills it. The service layer's archive writer implements it: it names the entries
/// (unique, safe, the changes listed in `metadata.json`), checks every stored file's SHA-256 as
/// it streams, and lists every entry in `SHA256SUMS`.
public protocol SourceExportArchive {
    /// Where the snapshot's stored files are read from.
    var loader: any BlobLoader { get }

    /// A private directory for files made for the export (an SQLite database's SQL text),
    /// created on first use: an export that makes none needs no writable disk.
    func scratchDirectory() throws -> String

    /// Adds the source's whole directory of the snapshot under the source's name: its files,
    /// directories and symbolic links.
    func addTree(_ node: Node) async throws

    /// Adds a stored file under its own name inside the source's directory of the archive.
    func addFile(_ file: Node) async throws

    /// Adds the database's plain SQL from a stored file: `database.sql` at the top of the archive
    /// when the snapshot holds one database, else `NAME/database.sql`.
    func addSQL(_ file: Node) async throws

    /// Adds the database's plain SQL (see ``addSQL(_:)``) from a local file made for the export.
    func addSQL(contentsOf path: String) async throws
}
