import GRDB

/// Versioned schema. Never edit a registered migration: add a new one.
package enum Migrations {
    package static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-pool") { db in
            try db.create(table: "meta") { t in
                t.primaryKey("key", .text)
                t.column("value", .text).notNull()
            }
            try db.create(table: "pool_size") { t in
                t.column("min", .integer).notNull()
                t.column("max", .integer).notNull()
                t.column("lingerMs", .integer).notNull()
            }
            try db.execute(sql: "INSERT INTO pool_size (min, max, lingerMs) VALUES (0, 0, 0)")
            try db.create(table: "batch") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("size", .integer).notNull().check { $0 > 0 }
                t.column("homepage", .text).notNull()
                t.column("state", .text).notNull()
                t.column("granted", .integer).notNull().defaults(to: 0)
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "vm") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("domainName", .text).notNull().unique()
                t.column("state", .text).notNull().indexed()
                t.column("batchId", .integer).references("batch")
                t.column("handleId", .integer)
                t.column("ip", .text)
                t.column("agentVersion", .text)
                t.column("homepage", .text)
                t.column("createdAt", .datetime).notNull()
                t.column("stateSince", .datetime).notNull()
                t.column("idleSince", .datetime)
                t.column("lastError", .text)
            }
            try db.create(table: "handle") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("batchId", .integer).notNull().references("batch").indexed()
                t.column("state", .text).notNull()
                t.column("vmId", .integer).references("vm")
                t.column("createdAt", .datetime).notNull()
                t.column("assignedAt", .datetime)
                t.column("endedAt", .datetime)
                t.column("reason", .text)
            }
            // The database itself refuses a VM assigned to two handles.
            try db.execute(sql: "CREATE UNIQUE INDEX handle_one_per_vm ON handle(vmId) WHERE state = 'assigned'")
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull()
                t.column("kind", .text).notNull().indexed()
                t.column("vmId", .integer)
                t.column("batchId", .integer)
                t.column("handleId", .integer)
                t.column("message", .text).notNull()
            }
            // The event log is append-only.
            try db.execute(sql: """
                CREATE TRIGGER event_no_update BEFORE UPDATE ON event
                BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                CREATE TRIGGER event_no_delete BEFORE DELETE ON event
                BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                """)
        }
        migrator.registerMigration("v2-pages") { db in
            // A VM's session changes at every reset; a handle remembers the session it got, so
            // that pages captured for one user never show up for the next.
            try db.alter(table: "vm") { t in t.add(column: "session", .integer).notNull().defaults(to: 0) }
            try db.alter(table: "handle") { t in t.add(column: "vmSession", .integer) }
            try db.alter(table: "batch") { t in t.add(column: "cookies", .text) }
            try db.create(table: "blob") { t in
                t.primaryKey("hash", .text)
                t.column("bytes", .integer).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "page") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("vmId", .integer).notNull().references("vm")
                t.column("vmSession", .integer).notNull()
                t.column("agentPage", .integer).notNull()
                t.column("url", .text).notNull()
                t.column("title", .text).notNull()
                t.column("at", .datetime).notNull()
                t.column("guestTime", .integer).notNull()
                t.column("screenshotHash", .text).references("blob")
                t.column("screenshotBytes", .integer).notNull()
                t.column("mhtmlHash", .text).references("blob")
                t.column("mhtmlBytes", .integer).notNull()
            }
            try db.create(index: "page_by_session", on: "page", columns: ["vmId", "vmSession"])
        }
        migrator.registerMigration("v3-access-tokens") { db in
            // Viewer tokens, by SHA-256 of the token (never the token itself). A token is only
            // valid while its handle holds the VM in the same session (see AccessTokenStore).
            try db.create(table: "access_token") { t in
                t.primaryKey("hash", .text)
                t.column("handleId", .integer).notNull().references("handle")
                t.column("vmId", .integer).notNull().references("vm")
                t.column("vmSession", .integer).notNull()
                t.column("scope", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
        }
        migrator.registerMigration("v4-machines") { db in
            // Generic VMs and keyed viewers: the desired state the machine reconciler drives to.
            try db.create(table: "machine") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("uuid", .text).notNull().unique()
                t.column("name", .text).notNull()
                t.column("spec", .text).notNull()
                t.column("desired", .text).notNull()
                t.column("status", .text).notNull().indexed()
                t.column("reason", .text)
                t.column("ip", .text)
                t.column("agentVersion", .text)
                t.column("agentSeen", .boolean).notNull().defaults(to: false)
                t.column("ownerKey", .text)
                t.column("accessKey", .text)
                t.column("domainName", .text).notNull().unique()
                t.column("createdAt", .datetime).notNull()
                t.column("statusSince", .datetime).notNull()
            }
            // A name addresses one VM that is wanted; a destroyed one frees it.
            try db.execute(sql: "CREATE UNIQUE INDEX machine_live_name ON machine(name) WHERE desired != 'destroyed'")
            // Exactly one VM per viewer key: SQLite itself refuses a second, whatever the races.
            try db.execute(sql: "CREATE UNIQUE INDEX machine_one_per_owner ON machine(ownerKey) WHERE desired != 'destroyed' AND ownerKey IS NOT NULL")
            try db.alter(table: "event") { t in t.add(column: "machineId", .integer) }
        }
        migrator.registerMigration("v5-clients") { db in
            // Registered clients. Keys are stored as two one-way derivations only: the SHA-256
            // that bearer keys are looked up by, and the HMAC key that signatures are checked with.
            try db.create(table: "client") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("email", .text).notNull().unique(onConflict: .abort).collate(.nocase)
                t.column("role", .text).notNull()
                t.column("groups", .text).notNull().defaults(to: "[]")
                t.column("keyHash", .text).notNull().unique()
                t.column("signingKey", .blob).notNull()
                t.column("requests", .integer).notNull().defaults(to: 0)
                t.column("revoked", .boolean).notNull().defaults(to: false)
                t.column("createdAt", .datetime).notNull()
                t.column("lastSeenAt", .datetime)
            }
            // Signatures already accepted, for as long as their timestamp is fresh: a replay is
            // refused even across a restart of the appliance.
            try db.create(table: "seen_signature") { t in
                t.primaryKey("signature", .text)
                t.column("seenAt", .datetime).notNull().indexed()
            }
            // Who made what: NULL is an admin or the legacy control app on a trusted network.
            try db.alter(table: "batch") { t in t.add(column: "clientId", .integer).references("client") }
            try db.alter(table: "machine") { t in t.add(column: "clientId", .integer).references("client") }
        }
        migrator.registerMigration("v6-jobs") { db in
            // Capture jobs: a URL that an idle pool VM loads and captures (Dockulator's queue).
            try db.create(table: "job") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("clientId", .integer).references("client")
                t.column("url", .text).notNull()
                t.column("cookies", .text)
                t.column("waitForText", .text)
                t.column("timeoutMs", .integer).notNull()
                t.column("maxAttempts", .integer).notNull()
                t.column("state", .text).notNull().indexed()
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("vmId", .integer)
                t.column("pageId", .integer).references("page")
                t.column("lastError", .text)
                t.column("createdAt", .datetime).notNull()
                t.column("finishedAt", .datetime)
            }
            // One row per try; outcome NULL while it runs.
            try db.create(table: "job_attempt") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("jobId", .integer).notNull().references("job").indexed()
                t.column("vmId", .integer).notNull()
                t.column("vmSession", .integer).notNull()
                t.column("startedAt", .datetime).notNull()
                t.column("endedAt", .datetime)
                t.column("outcome", .text)
                t.column("reason", .text)
            }
            // At most one running attempt per job, whatever the races.
            try db.execute(sql: "CREATE UNIQUE INDEX job_attempt_one_running ON job_attempt(jobId) WHERE outcome IS NULL")
            try db.alter(table: "vm") { t in t.add(column: "jobId", .integer) }
            try db.alter(table: "event") { t in t.add(column: "jobId", .integer) }
        }
        // Smart proxy resources (Proxy/ResourceStore.swift).
        migrator.registerMigration("v7-resources") { db in
            try db.create(table: "resource") { t in
                t.primaryKey("id", .text)
                t.column("spec", .text).notNull()
                t.column("port", .integer).notNull()
                t.column("groups", .text).notNull()
                t.column("idleTimeout", .integer).notNull()
                t.column("createdAt", .datetime).notNull()
            }
        }
        // Issue 20: how each session's homepage load went, the batch's window mode, and the tab
        // of each captured page.
        migrator.registerMigration("v8-browser-outcomes") { db in
            try db.alter(table: "vm") { t in
                t.add(column: "homepageError", .text)
                t.add(column: "homepageAt", .datetime)
            }
            try db.alter(table: "batch") { t in t.add(column: "browser", .text).notNull().defaults(to: BrowserWindow.full.rawValue) }
            try db.alter(table: "page") { t in t.add(column: "tab", .integer) }
        }
        // Leases (Store/Leases.swift): a handle not kept alive within its batch's lease is
        // released, and a batch past its expiry is cancelled, by the pool's part of an engine pass.
        migrator.registerMigration("v9-leases") { db in
            try db.alter(table: "batch") { t in
                t.add(column: "leaseSeconds", .integer)
                t.add(column: "expiresAt", .datetime)
            }
            try db.alter(table: "handle") { t in
                t.add(column: "leaseSeconds", .integer)
                t.add(column: "leaseExpiresAt", .datetime)
            }
            // Every pass asks for the next deadline: these keep that to the few live rows, however
            // many handles and batches the tables have kept.
            try db.execute(sql: "CREATE INDEX handle_live_lease ON handle(leaseExpiresAt) WHERE state IN ('waiting', 'assigned') AND leaseExpiresAt IS NOT NULL")
            try db.execute(sql: "CREATE INDEX batch_open_expiry ON batch(expiresAt) WHERE state = 'open' AND expiresAt IS NOT NULL")
        }
        return migrator
    }
}
