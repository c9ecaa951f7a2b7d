import BunkerCore
import BunkerService
import BunkerSMTP
import BunkerSources
import Foundation
import Testing

@Suite struct ConfigurationTests {
    @Test func readsTheDocumentedShape() throws {
        let config = try Configuration(text: """
            data_dir = "/var/lib/bunker"

            [repository]
            path = "/data/backups"
            compression_level = 5

            [[source]]
            name = "clinic"
            kind = "postgres"
            host = "/var/run/postgresql"
            port = 5433
            database = "clinic"
            user = "backup"
            password_env = "PGPASSWORD"

            [[source]]
            name = "studies"
            kind = "files"
            path = "/data/studies"
            exclude = ["*.tmp", "cache/"]

            [retention]
            keep_daily = 7
            """, file: "/etc/bunker/bunker.toml", environment: [:])
        #expect(config.dataDirectory == "/var/lib/bunker")
        #expect(config.repository.path == "/data/backups")
        #expect(config.repository.compressionLevel == 5)
        #expect(config.sources.map(\.name) == ["clinic", "studies"])
        #expect((config.sources[0] as? PostgresSource)?.connection == PostgresConnection(host: "/var/run/postgresql", port: 5433, user: "backup", passwordEnvironment: "PGPASSWORD"))
        #expect((config.sources[1] as? FilesSource)?.excludes == ["*.tmp", "cache/"])
        var retention = RetentionPolicy()
        retention.keepDaily = 7
        #expect(config.retention == retention, "a table with a keep rule replaces the default tiers")
    }

    @Test func retentionTableReadsEveryKeyAndTheClinicalDashboardComplianceDays() throws {
        let config = try Configuration(text: """
            [retention]
            keep_last = 2
            keep_hourly = 24
            keep_weekly = 4
            keep_monthly = 12
            keep_yearly = 7
            keep_within = "3d"
            keep_within_daily = "10d"
            keep_tags = ["audit", "legal"]
            min_age_days = 2
            safety_min_age_days = 60
            """, file: "/etc/bunker.toml", environment: ["BACKUP_RETENTION_DAYS": "3650"])
        let p = config.retention
        #expect((p.keepLast, p.keepHourly, p.keepDaily, p.keepWeekly, p.keepMonthly, p.keepYearly) == (2, 24, nil, 4, 12, 7))
        #expect(p.keepWithin == .days(3) && p.keepWithinDaily == .days(10))
        #expect(p.keepTags == ["audit", "legal"])
        #expect(p.minimumAge == .days(2) && p.safetyMinimumAge == .days(60))
        #expect(p.keepWithinYearly == .days(3650), "BACKUP_RETENTION_DAYS sets how long a yearly backup is kept")

        let defaults = try Configuration(text: "[retention]\nmin_age_days = 3\n", file: "/etc/bunker.toml", environment: [:])
        var standard = RetentionPolicy.standard(complianceDays: 2555)
        standard.minimumAge = .days(3)
        #expect(defaults.retention == standard, "without keep rules the DermAI retention tiers apply")
        #expect(try Configuration(environment: ["BACKUP_RETENTION_DAYS": "365"]).retention == .standard(complianceDays: 365))
    }

    /// Every pg_dump and psql call of a source has a limit: `timeout`, 6 hours unless set.
    @Test(arguments: [("\"2h\"", 7200), ("\"30m\"", 1800), ("\"90s\"", 90), ("\"1h30m\"", 5400), ("\"1d\"", 86400), (nil, 6 * 3600)])
    func postgresSourceTimeoutIsReadAndDefaultsToSixHours(value: String?, seconds: Int64) throws {
        let text = "[[source]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"clinic\"\n" + (value.map { "timeout = \($0)\n" } ?? "")
        let configuration = try Configuration(text: text, file: "/etc/bunker.toml", environment: [:])
        #expect((configuration.sources.first as? PostgresSource)?.connection?.timeout == .seconds(seconds))
    }

    @Test func postgresSourceWalTableIsReadAndCheckedAtItsLine() throws {
        let base = "[[source]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"clinic\"\n"
        let configuration = try Configuration(text: base + "[source.wal]\nasync = true\nspool_dir = \"spool\"\nspool_max = 8\n", file: "/etc/bunker/bunker.toml", environment: [:])
        let wal = try #require((configuration.sources.first as? PostgresSource)?.walArchiving)
        #expect(wal.async && wal.spoolDirectory == "/etc/bunker/spool" && wal.spoolMax == 8)
        #expect((try Configuration(text: base, file: "/etc/bunker.toml", environment: [:]).sources.first as? PostgresSource)?.walArchiving == WalArchiving())
        for (text, key) in [("[source.wal]\nasync = true\n", "spool_dir"), ("[source.wal]\nasynch = true\n", "asynch"), ("[source.wal]\nspool_max = 0\n", "spool_max")] {
            do {
                _ = try Configuration(text: base + text, file: "/etc/bunker.toml", environment: [:])
                Issue.record("accepted \(text)")
            } catch let error as BunkerError {
                #expect(error.code == .invalidArgument && error.message.contains(key) && error.message.contains("/etc/bunker.toml:"), "\(error.message)")
            }
        }
    }

    @Test func schedulesAreReadAndDefaultWhenAbsent() throws {
        let config = try Configuration(text: """
            [[schedule]]
            job = "backup"
            cron = "0 23 * * *"
            backup_type = "database"

            [[schedule]]
            job = "drill"
            cron = "@monthly"
            """, file: "/etc/bunker/bunker.toml", environment: [:])
        #expect(config.effectiveSchedules == [
            Schedule(job: .backup, cron: try CronExpression("0 23 * * *"), backupType: .database),
            Schedule(job: .drill, cron: try CronExpression("@monthly")),
        ])
        let none = try Configuration(text: "", file: "/etc/bunker/bunker.toml", environment: [:])
        #expect(none.effectiveSchedules == Schedule.defaults)
    }

    @Test func clinicalDashboardEnvironmentVariablesOverrideTheFile() throws {
        let config = try Configuration(text: "[repository]\npath = \"/a\"\ncompression_level = 3\n", file: "/x/bunker.toml",
                                       environment: ["BACKUP_DIR": "/b", "BACKUP_COMPRESSION_LEVEL": "9"])
        #expect(config.repository.path == "/b")
        #expect(config.repository.compressionLevel == 9)
    }

    @Test func s3RepositoryKeysAreRead() throws {
        let config = try Configuration(
            text: "[repository]\nurl = \"s3://clinic-backups/bunker\"\nendpoint = \"https://s3.eu-central-1.amazonaws.com\"\nregion = \"eu-central-1\"\npath_style = false\n",
            file: "/etc/bunker/bunker.toml", environment: [:])
        #expect(config.repository.url == "s3://clinic-backups/bunker")
        #expect(config.repository.location == "s3://clinic-backups/bunker")
        #expect(config.repository.path == nil)
        #expect(config.repository.endpoint == "https://s3.eu-central-1.amazonaws.com")
        #expect(config.repository.region == "eu-central-1")
        #expect(config.repository.pathStyle == false)
    }

    @Test func clinicalDashboardMailVariablesAreReadStrictly() throws {
        let config = try Configuration(environment: ["SMTP_HOST": "mail.clinic.test", "SMTP_PORT": "2525", "SMTP_TLS": "False"])
        #expect(config.smtp?.port == 2525)
        #expect(config.smtp?.security == SMTPSettings.Security.none)
        #expect(try Configuration(environment: ["SMTP_HOST": "m", "SMTP_TLS": "true"]).smtp?.security == .starttls)
        #expect(try Configuration(environment: ["SMTP_HOST": "m", "SMTP_TLS": "ssl"]).smtp?.security == .tls)
        #expect(try Configuration(environment: ["SMTP_HOST": "m", "SMTP_TLS": "false", "SMTP_SSL": "1"]).smtp?.security == .tls)
    }

    @Test(arguments: [
        (["SMTP_HOST": "m", "SMTP_TLS": "required"], "SMTP_TLS=required is not understood"),
        (["SMTP_HOST": "m", "SMTP_SSL": "maybe"], "SMTP_SSL=maybe is not understood"),
        (["SMTP_HOST": "m", "SMTP_PORT": "smtp"], "SMTP_PORT=smtp is not a port"),
        (["SMTP_HOST": "m", "SMTP_PORT": "70000"], "SMTP_PORT=70000 is not a port"),
        (["BACKUP_RETENTION_DAYS": "seven years"], "BACKUP_RETENTION_DAYS=seven years is not a number of days"),
        (["BACKUP_RETENTION_DAYS": "0"], "BACKUP_RETENTION_DAYS=0 is not a number of days"),
        (["BACKUP_COMPRESSION_LEVEL": "max"], "BACKUP_COMPRESSION_LEVEL=max is not a zstd level from 1 to 19"),
        (["BACKUP_COMPRESSION_LEVEL": "22"], "BACKUP_COMPRESSION_LEVEL=22 is not a zstd level"),
    ])
    func environmentValuesThatCannotBeMeantAreErrors(environment: [String: String], message: String) throws {
        do {
            _ = try Configuration(environment: environment)
            Issue.record("accepted \(environment)")
        } catch let error as BunkerError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix(message), "\(error.message)")
        }
        // The same from a configuration file's overrides.
        #expect(throws: BunkerError.self) { try Configuration(text: "", file: "/etc/bunker.toml", environment: environment) }
    }

    @Test(arguments: [
        ("[repository]\npath = \"/a\"\ncompresion_level = 3\n", ":3: compresion_level", "unknown key"),
        ("[[source]]\nname = \"db\"\nkind = \"oracle\"\npath = \"/x\"\n", ":3: kind", "files, sqlite or postgres"),
        ("[[source]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"x\"\npassword = \"secret\"\n", ":5: password", "never written"),
        ("[[source]]\nname = \"db\"\nkind = \"sqlite\"\n", ":1:", "path is required"),
        ("[repository]\ncompression_level = 42\n", ":2: compression_level", "between 1 and 19"),
        ("[retention]\nkeep_daily = 7\nkeep_within = \"3 days\"\n", ":3: keep_within", "not a duration"),
        ("[retention]\nkeep_dayly = 7\n", ":2: keep_dayly", "unknown key"),
        ("[repository\npath = 1\n", ":1:", "parsing"),
        ("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\n[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/y\"\n", ":6: name", "two sources"),
        ("[[schedule]]\njob = \"backup\"\ncron = \"0 25 * * *\"\n", ":3: cron", "25 is outside 0–23"),
        ("[[schedule]]\njob = \"backup\"\ncron = \"0 23 * *\"\n", ":3: cron", "it needs 5"),
        ("[[schedule]]\njob = \"backup\"\ncron = 23\n", ":3: cron", "must be a string"),
        ("[[schedule]]\njob = \"backup\"\n", ":1:", "cron is required"),
        ("[[schedule]]\njob = \"nap\"\ncron = \"@daily\"\n", ":2: job", "backup, cleanup, verify, drill or copy"),
        ("[[schedule]]\njob = \"verify\"\ncron = \"@daily\"\nbackup_type = \"full\"\n", ":4: backup_type", "job = \"backup\" only"),
        ("[[source]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"x\"\ntimeout = \"soon\"\n", ":5: timeout", "must be a duration"),
        ("[[source]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"x\"\ntimeout = 7200\n", ":5: timeout", "\"2h\", \"30m\", \"90s\""),
        ("[[source]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"x\"\ntimeout = \"0s\"\n", ":5: timeout", "must be a duration"),
        ("[repository]\nurl = \"s3://b/p\"\nsecret_access_key = \"x\"\n", ":3: secret_access_key", "never written in the configuration; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ("[repository]\nurl = \"s3://b/p\"\naws_access_key_id = \"x\"\n", ":3: aws_access_key_id", "AWS_PROFILE"),
        ("[repository]\nurl = \"/data/backups\"\n", ":2: url", "s3://BUCKET/PREFIX"),
        ("[repository]\npath = \"/a\"\nurl = \"s3://b/p\"\n", ":3: url", "not both"),
        ("[repository]\npath = \"/a\"\nregion = \"eu-west-1\"\n", ":3: region", "belongs to a repository given by url"),
        ("[repository]\nurl = \"s3://b/p\"\npath_style = \"yes\"\n", ":3: path_style", "true or false"),
        ("[repository]\nurl = \"s3://b/p\"\nendpoint = \"s3.example.com\"\n", ":3: endpoint", "must be a URL"),
    ])
    func errorsNameTheLine(text: String, location: String, message: String) throws {
        do {
            _ = try Configuration(text: text, file: "/etc/bunker.toml", environment: [:])
            Issue.record("accepted a bad configuration")
        } catch let error as BunkerError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("/etc/bunker.toml" + location), "\(error.message)")
            #expect(error.message.contains(message), "\(error.message)")
            #expect(error.message.components(separatedBy: "/etc/bunker.toml").count == 2, "the place is named once: \(error.message)")
        }
    }
}
