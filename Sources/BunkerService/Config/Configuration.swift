import BunkerCore
import BunkerSources
import Foundation
import TOMLKit

/// Bunker's settings: `bunker.toml` with the Clinical Dashboard's environment variables over it.
///
/// The file's shape is the one in DESIGN.md. Every key is checked: an unknown key, a value of the
/// wrong type or a missing required key is an error that names the file and line.
public struct Configuration: Sendable {
    /// The repository settings.
    public struct RepositorySettings: Sendable, Equatable {
        public var path: String?
        /// A repository elsewhere than a directory: `s3://BUCKET/PREFIX`.
        public var url: String?
        /// The S3 server (default: AWS_ENDPOINT_URL, else AWS's own for the region).
        public var endpoint: String?
        /// The S3 region (default: AWS_REGION, else the AWS profile's, else us-east-1).
        public var region: String?
        /// Whether the bucket goes in the path rather than the host name (default: path style
        /// everywhere but AWS).
        public var pathStyle: Bool?
        public var passwordFile: String?
        public var compressionLevel: Int?
        /// `object_lock = { mode = "compliance", days = 2555 }`: what `bunker init` creates the
        /// repository with when no --object-lock is given (an s3:// repository only). Once
        /// created, the repository's own sealed config rules.
        public var objectLock: ObjectLockSettings?
        /// `max_size = "100G"`: a budget for the repository's stored bytes. A backup that would
        /// pass it fails (safety copies before a restore excepted), and an alert goes out at 80 %.
        public var maxSize: UInt64?
        /// `read_only = true`: the repository is opened read-only (`--read-only`): no lock
        /// object, no probe, nothing written, so that credentials that can only read (an
        /// off-site archive's, on a machine rebuilt after a disaster) still list, verify and
        /// restore. Commands that write refuse, saying so.
        public var readOnly: Bool?

        /// Where the repository is: `url`, else `path`.
        public var location: String? { url ?? path }
    }

    /// `[server] restore_signature`.
    public enum RestoreSignature: String, Sendable, Equatable {
        case required, optional
    }

    /// `[server] archive_checksum`: when the SHA-256 of a backup's ZIP (the API's `checksum`)
    /// is worked out.
    public enum ArchiveChecksum: String, Sendable, Equatable {
        /// Right after every backup of the configured sources: the ZIP is written once into a
        /// hasher (nothing on disk), so `POST /backup` and every listing answer it.
        case afterBackup = "after_backup"
        /// At the first export (a download or `bunker export`) only; `null` until then.
        case onExport = "on_export"
    }

    /// Keys that would put an object store's secret in the file, which is refused.
    static let secretRepositoryKeys = ["access_key_id", "secret_access_key", "session_token", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "secret_key", "access_key"]

    /// `[server]`: where `bunker serve` listens and how its tokens are made.
    public struct ServerSettings: Sendable, Equatable {
        /// `host:port`; loopback by default.
        public var listen = "127.0.0.1:8080"
        /// How long an access token is valid.
        public var tokenLifetime: TimeInterval = 3600
        /// Whether `POST /restore/{id}` needs an electronic signature (a re-entered password and
        /// a reason). `optional` lets a client written against the Clinical Dashboard backup
        /// guide restore with its body, `{"create_safety_backup": true}`; the audit trail then
        /// says the restore was not signed. A password that is given is checked all the same.
        public var restoreSignature: RestoreSignature = .required
        /// When a backup's ZIP checksum is worked out (``ArchiveChecksum``).
        public var archiveChecksum: ArchiveChecksum = .afterBackup
        /// The HS256 secret (64 hex digits); default `<data_dir>/jwt.key`, generated at first start.
        public var jwtSecretFile: String?
        /// PEM certificate chain and private key: with both, the server speaks HTTPS only.
        public var tlsCertificateFile: String?
        public var tlsKeyFile: String?

        /// `listen` as host and port (checked when the configuration is read).
        public var listenAddress: (host: String, port: Int) {
            Self.parse(listen) ?? ("127.0.0.1", 8080)
        }

        static func parse(_ listen: String) -> (host: String, port: Int)? {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else { return nil }
            let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            return host.isEmpty ? nil : (host, port)
        }
    }

    /// Where the configuration came from (nil: built from defaults and the environment alone).
    public var file: String?
    /// Catalog, scratch space, drill reports; default `./.bunker`.
    public var dataDirectory: String
    public var repository = RepositorySettings()
    /// `[repositories.NAME]`: other repositories by name (an off-site copy, a cloud tier), each
    /// with its own location, password file and retention.
    public var repositories: [String: NamedRepository] = [:]
    /// The `[[source]]` tables, each made into its source by its kind's own code (``SourceKinds``).
    public var sources: [any Source] = []
    /// The `[[schedule]]` lines; nil when there are none, and then ``Schedule/defaults`` apply.
    public var schedules: [Schedule]?

    /// What `bunker serve` schedules.
    public var effectiveSchedules: [Schedule] { schedules ?? Schedule.defaults }
    /// `[auth]`: failed logins before a lockout, and its length.
    public var loginPolicy = LoginPolicy()
    public var server = ServerSettings()
    /// `[audit] key_file`: the audit anchors' key, kept outside the data directory if wanted;
    /// default `<data_dir>/audit.key`.
    public var auditKeyFile: String?
    /// `[smtp]`, or the Clinical Dashboard's SMTP_* variables; nil: no e-mail.
    public var smtp: SMTPConfiguration?
    public var notifications = NotificationSettings()
    public var webhooks: [WebhookSettings] = []
    /// `[pagerduty]`: incidents through the Events API v2.
    public var pagerDuty: SecretPostSettings?
    /// `[slack]`: messages through an incoming webhook.
    public var slack: SecretPostSettings?
    /// The `[retention]` policy; without one, the DermAI retention tiers (``RetentionPolicy/standard(complianceDays:)``).
    public var retention = RetentionPolicy.standard()

    /// A configuration from the environment and defaults alone.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        dataDirectory = Self.absolute(environment["BUNKER_DATA_DIR"] ?? ".bunker", relativeTo: nil)
        try applyOverrides(environment)
    }

    /// Finds and reads the configuration: `explicit` (from --config), else `BUNKER_CONFIG`, else
    /// `bunker.toml` beside the data directory; none found gives the defaults.
    public static func load(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        if let path = explicit ?? environment["BUNKER_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard FileManager.default.fileExists(atPath: path) else {
                throw BunkerError(.invalidArgument, "The configuration file \(path) does not exist.")
            }
            return try Configuration(file: path, environment: environment)
        }
        let dataDir = absolute(environment["BUNKER_DATA_DIR"] ?? ".bunker", relativeTo: nil)
        let beside = (dataDir as NSString).deletingLastPathComponent + "/bunker.toml"
        if FileManager.default.fileExists(atPath: beside) {
            return try Configuration(file: beside, environment: environment)
        }
        return try Configuration(environment: environment)
    }

    /// Reads a configuration file.
    public init(file: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw BunkerError(.invalidArgument, "Cannot read the configuration file \(file).")
        }
        try self.init(text: text, file: file, environment: environment)
    }

    /// Parses configuration text; `file` names it in errors and anchors relative paths.
    public init(text: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.file = file
        let lines = ConfigLines(text: text)
        let base = (Self.absolute(file, relativeTo: nil) as NSString).deletingLastPathComponent
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw BunkerError(.invalidArgument, "\(file):\(error.source.begin.line): \(error.description)")
        }
        var reader = TableReader(table: root, path: [], lines: lines, file: file, base: base, environment: environment)
        let configured = try reader.string("data_dir")
        dataDirectory = Self.absolute(environment["BUNKER_DATA_DIR"] ?? configured ?? ".bunker", relativeTo: base)

        if var r = try reader.table("repository") {
            repository = try Self.readRepository(&r)
            try r.rejectUnknown()
        }
        try readNamedRepositories(&reader)
        var names: Set<String> = []
        for var s in try reader.tables("source") {
            let name = try s.required { try $0.string("name") }
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw s.error(key: "name", "a source name must be a plain name (no /), as it names the source's directory in snapshots")
            }
            guard names.insert(name).inserted else {
                throw s.error(key: "name", "two sources are named \"\(name)\"")
            }
            let kind = try s.required { try $0.string("kind") }
            let source = try SourceKinds.makeSource(name: name, kind: kind, settings: &s)
            try s.rejectUnknown()
            sources.append(source)
        }
        for var t in try reader.tables("schedule") {
            let jobText = try t.required { try $0.string("job") }
            guard let job = ScheduledJobKind(rawValue: jobText) else {
                throw t.error(key: "job", "job must be backup, cleanup, verify, drill or copy, not \"\(jobText)\"")
            }
            // A missing or mistyped key is already an error naming its line; only the expression's
            // own errors (every error CronExpression throws) get the key's line here.
            let cronText = try t.required { try $0.string("cron") }
            let cron: CronExpression
            do {
                cron = try CronExpression(cronText)
            } catch let error as BunkerError {
                throw t.error(key: "cron", error.message)
            }
            var backupType: BackupType?
            if let typeText = try t.string("backup_type") {
                guard job == .backup else { throw t.error(key: "backup_type", "backup_type belongs to job = \"backup\" only") }
                guard let type = BackupType(rawValue: typeText) else {
                    throw t.error(key: "backup_type", "backup_type must be full, database or files, not \"\(typeText)\"")
                }
                backupType = type
            }
            let destination = try t.string("to")
            if job == .copy {
                guard let destination else { throw t.error(key: nil, "a copy needs to = \"NAME\", a [repositories.NAME] to copy into") }
                guard repositories[destination] != nil else {
                    throw t.error(key: "to", "names no repository: add [repositories.\(destination)] with its url (or path) and password_file")
                }
                guard repositories[destination]?.settings.passwordFile != nil else {
                    throw t.error(key: "to", "[repositories.\(destination)] needs a password_file for a scheduled copy")
                }
            } else if destination != nil {
                throw t.error(key: "to", "to belongs to job = \"copy\" only")
            }
            try t.rejectUnknown()
            schedules = (schedules ?? []) + [Schedule(job: job, cron: cron, backupType: backupType, destination: destination)]
        }
        if var auth = try reader.table("auth") {
            loginPolicy.maxFailures = try auth.int("max_failed_logins", range: 1...100) ?? loginPolicy.maxFailures
            if let minutes = try auth.int("lockout_minutes", range: 1...(7 * 24 * 60)) { loginPolicy.lockoutSeconds = TimeInterval(minutes * 60) }
            try auth.rejectUnknown()
        }
        if var table = try reader.table("audit") {
            auditKeyFile = try table.path("key_file")
            try table.rejectUnknown()
        }
        if var table = try reader.table("server") {
            if let listen = try table.string("listen") {
                guard ServerSettings.parse(listen) != nil else { throw table.error(key: "listen", "must be host:port, like \"127.0.0.1:8080\"") }
                server.listen = listen
            }
            if let minutes = try table.int("token_lifetime_minutes", range: 1...(24 * 60)) { server.tokenLifetime = TimeInterval(minutes * 60) }
            if let text = try table.string("restore_signature") {
                guard let policy = RestoreSignature(rawValue: text) else {
                    throw table.error(key: "restore_signature", "must be \"required\" (the default: a re-entered password and a reason) or \"optional\", not \"\(text)\"")
                }
                server.restoreSignature = policy
            }
            if let text = try table.string("archive_checksum") {
                guard let when = ArchiveChecksum(rawValue: text) else {
                    throw table.error(key: "archive_checksum", "must be \"after_backup\" (the default: the ZIP's SHA-256 right after each backup) or \"on_export\" (at its first download or export), not \"\(text)\"")
                }
                server.archiveChecksum = when
            }
            server.jwtSecretFile = try table.path("jwt_secret_file")
            server.tlsCertificateFile = try table.path("tls_certificate")
            server.tlsKeyFile = try table.path("tls_key")
            if (server.tlsCertificateFile == nil) != (server.tlsKeyFile == nil) {
                throw table.error(key: server.tlsCertificateFile == nil ? "tls_key" : "tls_certificate", "needs tls_certificate and tls_key together")
            }
            try table.rejectUnknown()
        }
        if var table = try reader.table("retention") {
            retention = try Self.readRetention(&table)
            try table.rejectUnknown()
        }
        try readNotificationSettings(&reader)
        try reader.rejectUnknown()
        try applyOverrides(environment)
        try checkRepositoryIsOutsideSources(repository.location)
        // Here, not only when the catalog opens: `init` and `snapshots` open none, and a
        // configuration that would roll the audit trail back is wrong whatever is run with it.
        try checkDataDirectoryIsOutsideSources()
    }

    /// Reads a repository's table (`[repository]`, `[repositories.NAME]`): `path` or `url` with
    /// the object store's settings, `password_file`, `compression_level`. Credentials are never
    /// taken from the file.
    static func readRepository(_ r: inout TableReader) throws -> RepositorySettings {
        var repository = RepositorySettings()
        repository.path = try r.path("path")
        repository.passwordFile = try r.path("password_file")
        repository.compressionLevel = try r.int("compression_level", range: 1...19)
        repository.readOnly = try r.bool("read_only")
        if let text = try r.string("max_size") {
            guard let bytes = parseByteSize(text), bytes > 0 else {
                throw r.error(key: "max_size", "\"\(text)\" is not a size; write e.g. 500G or 2T (powers of 1024)")
            }
            repository.maxSize = bytes
        }
        for key in Self.secretRepositoryKeys where r.has(key) {
            throw r.error(key: key, "credentials are never written in the configuration; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE with the shared credentials file ~/.aws/credentials")
        }
        repository.url = try r.string("url")
        repository.endpoint = try r.string("endpoint")
        repository.region = try r.string("region")
        repository.pathStyle = try r.bool("path_style")
        if var lock = try r.table("object_lock") {
            let mode = try lock.required { try $0.string("mode") }
            let days = try lock.required { try $0.int("days", range: 1...ObjectLockSettings.maximumDays) }
            try lock.rejectUnknown()
            do {
                repository.objectLock = ObjectLockSettings(mode: try ObjectLockMode(parsing: mode), days: days)
            } catch let error as BunkerError {
                throw lock.error(key: "mode", error.message)
            }
        }
        guard let url = repository.url else {
            for key in ["endpoint", "region", "path_style", "object_lock"] where r.has(key) {
                throw r.error(key: key, "belongs to a repository given by url = \"s3://BUCKET/PREFIX\"")
            }
            return repository
        }
        if repository.path != nil { throw r.error(key: "url", "give either path (a directory) or url, not both") }
        guard url.lowercased().hasPrefix("s3://"), url.count > "s3://".count else {
            throw r.error(key: "url", "must be s3://BUCKET/PREFIX (a local directory goes in path)")
        }
        if let endpoint = repository.endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw r.error(key: "endpoint", "must be a URL such as https://s3.eu-central-1.amazonaws.com or http://127.0.0.1:8333")
        }
        return repository
    }

    /// Reads `[retention]`. Without any `keep_*` key the DermAI retention tiers apply (so a table that only
    /// sets `min_age_days` keeps them); with one, exactly the rules written.
    static func readRetention(_ table: inout TableReader) throws -> RetentionPolicy {
        let counts = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"]
        let spans = ["keep_within", "keep_within_hourly", "keep_within_daily", "keep_within_weekly", "keep_within_monthly", "keep_within_yearly"]
        var policy = (counts + spans + ["keep_tags"]).contains(where: table.has) ? RetentionPolicy() : .standard()
        let n = try counts.map { try table.int($0, range: 0...1_000_000) }
        (policy.keepLast, policy.keepHourly, policy.keepDaily) = (n[0] ?? policy.keepLast, n[1] ?? policy.keepHourly, n[2] ?? policy.keepDaily)
        (policy.keepWeekly, policy.keepMonthly, policy.keepYearly) = (n[3] ?? policy.keepWeekly, n[4] ?? policy.keepMonthly, n[5] ?? policy.keepYearly)
        var d: [RetentionDuration?] = []
        for key in spans {
            guard let text = try table.string(key) else {
                d.append(nil)
                continue
            }
            do {
                d.append(try RetentionDuration(parsing: text))
            } catch let error as BunkerError {
                throw table.error(key: key, error.message)
            }
        }
        (policy.keepWithin, policy.keepWithinHourly, policy.keepWithinDaily) = (d[0] ?? policy.keepWithin, d[1] ?? policy.keepWithinHourly, d[2] ?? policy.keepWithinDaily)
        (policy.keepWithinWeekly, policy.keepWithinMonthly, policy.keepWithinYearly) = (d[3] ?? policy.keepWithinWeekly, d[4] ?? policy.keepWithinMonthly, d[5] ?? policy.keepWithinYearly)
        policy.keepTags = try table.strings("keep_tags") ?? []
        if let days = try table.int("min_age_days", range: 0...100_000) { policy.minimumAge = .days(days) }
        if let days = try table.int("safety_min_age_days", range: 0...100_000) { policy.safetyMinimumAge = .days(days) }
        return policy
    }

    /// The Clinical Dashboard's environment variables win over the file. A value that cannot be meant is an
    /// error naming the variable, never silently ignored.
    private mutating func applyOverrides(_ environment: [String: String]) throws {
        // The Clinical Dashboard's compliance period: how long a yearly backup is kept.
        if let days = try Self.integer("BACKUP_RETENTION_DAYS", in: environment, range: 1...100_000, meaning: "a number of days") {
            retention.keepWithinYearly = .days(days)
        }
        if let dir = environment["BACKUP_DIR"], !dir.isEmpty {
            repository.path = Self.absolute(dir, relativeTo: nil)
            repository.url = nil
        }
        if let level = try Self.integer("BACKUP_COMPRESSION_LEVEL", in: environment, range: compressionLevels, meaning: "a zstd level") {
            repository.compressionLevel = level
        }
        try applyMailOverrides(environment)
    }

    /// An environment variable's whole-number value, if it is set and not empty.
    static func integer(_ name: String, in environment: [String: String], range: ClosedRange<Int>, meaning: String) throws -> Int? {
        guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw BunkerError(.invalidArgument, "\(name)=\(text) is not \(meaning) from \(range.lowerBound) to \(range.upperBound); correct or unset it.")
        }
        return value
    }

    /// Opens the catalog in the data directory, after checking that no restore can overwrite it;
    /// `readOnly` opens it without writing anything (to verify the audit trail).
    public func openCatalog(readOnly: Bool = false) throws -> Catalog {
        try checkDataDirectoryIsOutsideSources()
        var options = catalogOptions
        options.readOnly = readOnly
        return try Catalog(dataDirectory: dataDirectory, options: options)
    }

    /// How the catalog is opened: the login policy and where the audit key is.
    var catalogOptions: Catalog.Options {
        var options = Catalog.Options()
        options.loginPolicy = loginPolicy
        options.auditKeyFile = auditKeyFile
        return options
    }

    /// The data directory holds the audit trail: it must not be inside a file tree that a
    /// restore replaces, or a restore would roll the trail back.
    /// Paths are compared with their symbolic links resolved: a source named through a link
    /// (or a data directory reached through one) is the same place as its target.
    public func checkDataDirectoryIsOutsideSources() throws {
        let data = Self.resolvingSymlinks(dataDirectory)
        for source in sources {
            guard let tree = source.replacedTree else { continue }
            let path = Self.resolvingSymlinks(tree)
            if data == path || data.hasPrefix(path.hasSuffix("/") ? path : path + "/") {
                throw BunkerError(.invalidArgument, "data_dir \(dataDirectory) is inside source \(source.name) (\(path)), which a restore replaces along with the catalog and audit trail; set data_dir (or BUNKER_DATA_DIR) to a directory outside every source.")
            }
        }
    }

    /// `path` with every symbolic link resolved; for a path that does not exist yet, its
    /// nearest existing ancestor is resolved and the rest appended.
    /// A link to a place that does not exist yet (a data directory not created) is followed too.
    static func resolvingSymlinks(_ path: String, depth: Int = 0) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        let parent = (path as NSString).deletingLastPathComponent
        guard !parent.isEmpty, parent != path, depth < 40 else { return path }
        let base = resolvingSymlinks(parent, depth: depth + 1)
        let here = (base as NSString).appendingPathComponent((path as NSString).lastPathComponent)
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: here) {
            let absolute = target.hasPrefix("/") ? target : (base as NSString).appendingPathComponent(target)
            return resolvingSymlinks((absolute as NSString).standardizingPath, depth: depth + 1)
        }
        return here
    }

    /// A private directory for temporary files, created on first use.
    public func scratchDirectory() throws -> String {
        let dir = dataDirectory + "/tmp"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return dir
    }

    static func absolute(_ path: String, relativeTo base: String?) -> String {
        var expanded = (path as NSString).expandingTildeInPath
        if !expanded.hasPrefix("/") {
            expanded = (base ?? FileManager.default.currentDirectoryPath) + "/" + expanded
        }
        return (expanded as NSString).standardizingPath
    }
}

/// Line numbers of tables and keys in a TOML text, for error messages (TOMLKit reports positions
/// only for syntax errors). Keys are found where a line starts with `key =`, which is how every
/// configuration in the documentation is written; anything else falls back to its table's line.
struct ConfigLines: Sendable {
    private var keys: [String: Int] = [:]

    init(text: String) {
        var table = ""
        var arrayCounts: [String: Int] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[[") {
                let name = line.dropFirst(2).prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                let index = arrayCounts[name, default: 0]
                arrayCounts[name] = index + 1
                table = "\(name)#\(index)"
                keys[table] = number + 1
            } else if line.hasPrefix("[") {
                table = line.dropFirst().prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                keys[table] = number + 1
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = line[..<equals].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                let full = table.isEmpty ? key : table + "." + key
                if keys[full] == nil { keys[full] = number + 1 }
            }
        }
    }

    /// The line of `key` in `table` (or of the table itself), if known.
    func line(table: String, key: String?) -> Int? {
        if let key, let line = keys[table.isEmpty ? key : table + "." + key] { return line }
        return keys[table]
    }
}

/// Reads one TOML table, remembering which keys were used so the rest can be refused.
struct TableReader: SourceSettingsReader {
    let table: TOMLTable
    /// "repository" or "source#2".
    let name: String
    let lines: ConfigLines
    let file: String
    /// The configuration file's directory, which relative paths start from.
    let base: String
    let environment: [String: String]
    private var used: Set<String> = []

    init(table: TOMLTable, path: [String], lines: ConfigLines, file: String, base: String, environment: [String: String]) {
        self.table = table
        self.name = path.joined(separator: ".")
        self.lines = lines
        self.file = file
        self.base = base
        self.environment = environment
    }

    func error(key: String?, _ message: String) -> BunkerError {
        let line = lines.line(table: name, key: key).map { ":\($0)" } ?? ""
        let shownTable = name.isEmpty ? "" : " in [\(name.replacingOccurrences(of: "#", with: "] number "))\(name.contains("#") ? "" : "]")"
        let shownKey = key.map { " \($0)" } ?? ""
        return BunkerError(.invalidArgument, "\(file)\(line):\(shownKey)\(shownTable): \(message).")
    }

    func has(_ key: String) -> Bool { table[key] != nil }

    mutating func accept(_ key: String) { used.insert(key) }

    mutating func string(_ key: String) throws -> String? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw error(key: key, "must be a string (in quotes)") }
        return string
    }

    mutating func int(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard let int = value.int else { throw error(key: key, "must be a whole number") }
        guard range.contains(int) else { throw error(key: key, "must be between \(range.lowerBound) and \(range.upperBound), not \(int)") }
        return int
    }

    mutating func bool(_ key: String) throws -> Bool? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw error(key: key, "must be true or false (no quotes)") }
        return bool
    }

    /// A span of time such as "2h", "30m", "90s" or "1h30m", more than zero.
    mutating func duration(_ key: String) throws -> Duration? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard let text = value.string, let duration = Self.parseDuration(text), duration > .zero else {
            throw error(key: key, "must be a duration in quotes, such as \"2h\", \"30m\", \"90s\" or \"1h30m\" (d, h, m, s)")
        }
        return duration
    }

    /// Days, hours, minutes and seconds (`1h30m`, `90s`); nil for anything else.
    static func parseDuration(_ text: String) -> Duration? {
        var seconds: Int64 = 0
        var number = ""
        var sawUnit = false
        for c in text.trimmingCharacters(in: .whitespaces).lowercased() {
            if c.isASCII && c.isNumber {
                number.append(c)
                continue
            }
            guard let n = Int64(number), n < 1 << 32 else { return nil }
            switch c {
            case "d": seconds += n * 86400
            case "h": seconds += n * 3600
            case "m": seconds += n * 60
            case "s": seconds += n
            default: return nil
            }
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit else { return nil }
        return .seconds(seconds)
    }

    mutating func path(_ key: String) throws -> String? {
        try string(key).map { Configuration.absolute($0, relativeTo: base) }
    }

    mutating func strings(_ key: String) throws -> [String]? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw error(key: key, "must be a list of strings, like [\"*.tmp\", \"cache/\"]") }
        return try array.map { element in
            guard let string = element.string else { throw error(key: key, "must be a list of strings, like [\"*.tmp\", \"cache/\"]") }
            return string
        }
    }

    mutating func required<T>(_ read: (inout TableReader) throws -> T?) throws -> T {
        let before = used
        guard let value = try read(&self) else {
            let missing = used.subtracting(before).first ?? "a key"
            throw error(key: nil, "\(missing) is required")
        }
        return value
    }

    mutating func table(_ key: String) throws -> TableReader? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard let sub = value.table else { throw error(key: key, "must be a table: [\(key)]") }
        return TableReader(table: sub, path: name.isEmpty ? [key] : [name, key], lines: lines, file: file, base: base, environment: environment)
    }

    mutating func tables(_ key: String) throws -> [TableReader] {
        used.insert(key)
        guard let value = table[key] else { return [] }
        guard let array = value.array else { throw error(key: key, "must be written as [[\(key)]] tables") }
        return try array.enumerated().map { index, element in
            guard let sub = element.table else { throw error(key: key, "must be written as [[\(key)]] tables") }
            return TableReader(table: sub, path: ["\(key)#\(index)"], lines: lines, file: file, base: base, environment: environment)
        }
    }

    func rejectUnknown() throws {
        for key in table.keys.sorted() where !used.contains(key) {
            throw error(key: key, "unknown key (check its spelling against docs/configuration.md)")
        }
    }
}
