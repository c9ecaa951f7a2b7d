import GRDB

extension Catalog {
    /// The catalog's schema, only ever changed by appending a named migration.
    ///
    /// Constraints live in the schema, so that a bug in Bunker (or a hand-made change) cannot
    /// store a user without a valid role, a backup without its checksum, or an audit row out of
    /// sequence. The triggers on `audit` refuse UPDATE and DELETE and any insert that is not the
    /// next row of the chain; they stop accidents, not attackers (anyone with the file can drop
    /// them), which is what the hash chain and the signed anchors are for.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-users") { db in
            try db.execute(sql: """
                CREATE TABLE users (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    username TEXT NOT NULL UNIQUE COLLATE NOCASE
                        CHECK (length(username) BETWEEN 1 AND 64 AND username NOT GLOB '*[^A-Za-z0-9._@-]*'),
                    full_name TEXT NOT NULL CHECK (length(full_name) > 0),
                    email TEXT CHECK (email IS NULL OR email LIKE '%_@_%'),
                    role TEXT NOT NULL CHECK (role IN ('SYSTEM_ADMIN', 'AUDITOR', 'VIEWER')),
                    password_hash TEXT NOT NULL CHECK (password_hash GLOB '$2[abxy]$*'),
                    active BOOLEAN NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
                    failed_logins INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
                    locked_until DATETIME,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL,
                    password_changed_at DATETIME NOT NULL
                );
                CREATE TRIGGER users_never_deleted BEFORE DELETE ON users
                BEGIN SELECT RAISE(ABORT, 'users are deactivated, never deleted'); END;
                CREATE TRIGGER users_never_renamed BEFORE UPDATE OF username ON users
                WHEN NEW.username IS NOT OLD.username
                BEGIN SELECT RAISE(ABORT, 'users are never renamed'); END;
                """)
        }
        migrator.registerMigration("v1-backups") { db in
            try db.execute(sql: """
                CREATE TABLE backups (
                    snapshot_id TEXT PRIMARY KEY NOT NULL CHECK (length(snapshot_id) = 64),
                    created_by TEXT NOT NULL CHECK (length(created_by) > 0),
                    created_by_user_id INTEGER REFERENCES users(id),
                    description TEXT,
                    backup_type TEXT CHECK (backup_type IS NULL OR backup_type IN ('full', 'database', 'files')),
                    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
                    stored_bytes INTEGER NOT NULL CHECK (stored_bytes >= 0),
                    file_count INTEGER NOT NULL CHECK (file_count >= 0),
                    checksum TEXT NOT NULL CHECK (length(checksum) = 64),
                    created_at DATETIME NOT NULL,
                    hostname TEXT NOT NULL,
                    tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
                    sources TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(sources))
                );
                CREATE INDEX backups_by_time ON backups(created_at);
                """)
        }
        migrator.registerMigration("v1-audit") { db in
            try db.execute(sql: """
                CREATE TABLE audit (
                    seq INTEGER PRIMARY KEY CHECK (seq > 0),
                    timestamp TEXT NOT NULL CHECK (timestamp GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*Z'),
                    actor TEXT NOT NULL CHECK (length(actor) > 0),
                    action TEXT NOT NULL CHECK (length(action) > 0),
                    target TEXT,
                    outcome TEXT NOT NULL CHECK (outcome IN ('started', 'success', 'failure', 'denied', 'interrupted')),
                    reason TEXT,
                    request_id TEXT,
                    details TEXT CHECK (details IS NULL OR json_valid(details)),
                    operation_seq INTEGER REFERENCES audit(seq),
                    prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
                    hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
                );
                CREATE INDEX audit_by_action ON audit(action);
                CREATE INDEX audit_by_actor ON audit(actor);
                CREATE INDEX audit_by_time ON audit(timestamp);
                CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
                CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
                BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
                CREATE TRIGGER audit_chained BEFORE INSERT ON audit
                WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit)
                  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1), '\(AuditRecord.genesisHash)')
                BEGIN SELECT RAISE(ABORT, 'an audit row must be the next row of the chain'); END;
                """)
        }
        migrator.registerMigration("v1-jobs") { db in
            try db.execute(sql: """
                CREATE TABLE jobs (
                    id TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'interrupted')),
                    actor TEXT NOT NULL,
                    target TEXT,
                    started_at DATETIME NOT NULL,
                    finished_at DATETIME,
                    pid INTEGER NOT NULL,
                    hostname TEXT NOT NULL,
                    audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit(seq),
                    message TEXT,
                    CHECK ((state = 'running') = (finished_at IS NULL))
                );
                CREATE INDEX jobs_running ON jobs(state) WHERE state = 'running';
                """)
        }
        migrator.registerMigration("v2-jobs-process-start") { db in
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN process_start TEXT")
        }
        // Rows from now on carry a MAC under the audit key. Rows already there keep none: a MAC
        // computed now would vouch for whatever the trail says at the upgrade (a row appended
        // behind Bunker's back included), and they stay protected as before, by the chain and
        // the signed anchors. The first anchor written after this migration signs where MACs
        // start (see `Catalog.anchorHead()`).
        migrator.registerMigration("v3-audit-mac") { db in
            try db.execute(sql: """
                ALTER TABLE audit ADD COLUMN mac TEXT CHECK (mac IS NULL OR length(mac) = 64);
                CREATE TRIGGER audit_mac_required BEFORE INSERT ON audit
                WHEN NEW.mac IS NULL
                BEGIN SELECT RAISE(ABORT, 'an audit row needs its MAC under the audit key'); END;
                """)
        }
        // Bumped when every token issued so far must stop working (a new password, a
        // deactivation); a token names the generation it was issued in.
        migrator.registerMigration("v3-users-token-generation") { db in
            try db.execute(sql: "ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0 CHECK (token_generation >= 0)")
        }
        // Who asked a running job to stop: `bunker jobs cancel` writes it, and the process that
        // runs the job (its `bunker serve`) reads it and cancels the job.
        migrator.registerMigration("v4-jobs-cancel-requested") { db in
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN cancel_requested_by TEXT")
        }
        migrator.registerMigration("v5-jobs-progress") { db in
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN progress TEXT")
        }
        // The export ZIP's SHA-256 (the API's `checksum`), recorded by the first export of a
        // snapshot, and the format it holds for.
        migrator.registerMigration("v6-backups-archive-checksum") { db in
            try db.execute(sql: """
                ALTER TABLE backups ADD COLUMN archive_sha256 TEXT
                    CHECK (archive_sha256 IS NULL OR (length(archive_sha256) = 64 AND archive_sha256 NOT GLOB '*[^0-9a-f]*'));
                ALTER TABLE backups ADD COLUMN archive_format TEXT;
                """)
        }
        // Credentials for machines that call the API (`bunker token`): only a token's SHA-256 is
        // kept; tokens are revoked, never deleted or renamed, like users.
        migrator.registerMigration("v7-service-tokens") { db in
            try db.execute(sql: """
                CREATE TABLE service_tokens (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL UNIQUE COLLATE NOCASE
                        CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^A-Za-z0-9._-]*'),
                    role TEXT NOT NULL CHECK (role IN ('SYSTEM_ADMIN', 'AUDITOR', 'VIEWER')),
                    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
                    created_at DATETIME NOT NULL,
                    created_by TEXT NOT NULL CHECK (length(created_by) > 0),
                    expires_at DATETIME,
                    revoked_at DATETIME,
                    revoked_by TEXT,
                    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
                );
                CREATE TRIGGER service_tokens_never_deleted BEFORE DELETE ON service_tokens
                BEGIN SELECT RAISE(ABORT, 'service tokens are revoked, never deleted'); END;
                CREATE TRIGGER service_tokens_never_changed BEFORE UPDATE OF name, role, token_hash, created_at, expires_at ON service_tokens
                WHEN NEW.name IS NOT OLD.name OR NEW.role IS NOT OLD.role OR NEW.token_hash IS NOT OLD.token_hash
                  OR NEW.created_at IS NOT OLD.created_at OR NEW.expires_at IS NOT OLD.expires_at
                BEGIN SELECT RAISE(ABORT, 'a service token is only ever revoked'); END;
                CREATE TRIGGER service_tokens_never_unrevoked BEFORE UPDATE OF revoked_at ON service_tokens
                WHEN OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS NOT OLD.revoked_at
                BEGIN SELECT RAISE(ABORT, 'a revoked service token stays revoked'); END;
                """)
        }
        // Console sessions ended by a logout before their tokens expire, by the token's SHA-256:
        // in the catalog rather than the server's memory, so that a restart of `bunker serve`
        // does not bring a logged-out session back. Rows go once their tokens have expired.
        migrator.registerMigration("v8-revoked-sessions") { db in
            try db.execute(sql: """
                CREATE TABLE revoked_sessions (
                    token_hash TEXT PRIMARY KEY CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
                    expires_at DATETIME NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }
}
