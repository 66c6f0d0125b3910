import GRDB

/// Versioned schema. Never edit a registered migration: add a new one.
enum Migrations {
    static var migrator: DatabaseMigrator {
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
        return migrator
    }
}
