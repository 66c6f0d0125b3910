import Foundation
import GRDB

package enum StoreError: Error, Equatable, CustomStringConvertible {
    case batchNotFound(Int64)
    case handleNotFound(Int64)
    case vmNotFound(Int64)

    package var description: String {
        switch self {
        case .batchNotFound(let id): return "no batch \(id)"
        case .handleNotFound(let id): return "no handle \(id)"
        case .vmNotFound(let id): return "no VM \(id)"
        }
    }
}

/// The appliance's desired state in SQLite (WAL). Each method is one transaction; GRDB runs it on
/// its own queue, never on an event loop.
package final class Store: Sendable {
    package let pool: DatabasePool
    /// A random id made at first start; it tags our libvirt domains so that two appliances on
    /// one host never touch each other's VMs.
    package let instanceId: String

    package init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(5)
        // Dates as epoch milliseconds would also do; GRDB's default text format sorts correctly.
        pool = try DatabasePool(path: path, configuration: config)
        // It holds the clients' HMAC keys: owner only (SQLite gives -wal and -shm the same mode).
        for file in [path, path + "-wal", path + "-shm"] { chmod(file, 0o600) }
        try Migrations.migrator.migrate(pool)
        instanceId = try pool.write { db in
            if let id = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'instance'") {
                return id
            }
            let id = String(UUID().uuidString.lowercased().prefix(8))
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('instance', ?)", arguments: [id])
            return id
        }
    }

    /// Appends to the event log inside the caller's transaction.
    package static func log(
        _ db: Database, _ kind: String, vm: Int64? = nil, batch: Int64? = nil, handle: Int64? = nil,
        _ message: String
    ) throws {
        var event = EventRecord(
            id: nil, at: Date(), kind: kind, vmId: vm, batchId: batch, handleId: handle, message: message)
        try event.insert(db)
    }

    package func poolSize() async throws -> PoolSize {
        try await pool.read { db in try PoolSize.fetchOne(db) ?? .initial }
    }

    package func vm(_ id: Int64) async throws -> VMRecord? {
        try await pool.read { db in try VMRecord.fetchOne(db, key: id) }
    }

    package func vms(includeDestroyed: Bool = false) async throws -> [VMRecord] {
        try await pool.read { db in
            includeDestroyed
                ? try VMRecord.order(Column("id")).fetchAll(db)
                : try VMRecord.filter(Column("state") != VMState.destroyed.rawValue).order(Column("id")).fetchAll(db)
        }
    }

    /// What the pool's part of an engine pass reads, in one transaction.
    package struct PoolSnapshot: Sendable {
        /// Every VM not yet destroyed.
        package var vms: [VMRecord]
        package var size: PoolSize
        package var openBatches: [BatchRecord]
        /// The earliest lease end or batch expiry (Leases.swift): the pass acts on it when due.
        package var nextDeadline: Date? = nil
    }

    package func poolSnapshot() async throws -> PoolSnapshot {
        try await pool.read { db in
            PoolSnapshot(
                vms: try VMRecord.filter(Column("state") != VMState.destroyed.rawValue).order(Column("id")).fetchAll(db),
                size: try PoolSize.fetchOne(db) ?? .initial,
                openBatches: try BatchRecord.filter(Column("state") == BatchState.open.rawValue).order(Column("id")).fetchAll(db),
                nextDeadline: try Store.nextDeadline(db))
        }
    }

    package func batches() async throws -> [BatchRecord] {
        try await pool.read { db in try BatchRecord.order(Column("id")).fetchAll(db) }
    }

    package func batch(_ id: Int64) async throws -> BatchRecord? {
        try await pool.read { db in try BatchRecord.fetchOne(db, key: id) }
    }

    package func handles(batch: Int64? = nil) async throws -> [HandleRecord] {
        try await pool.read { db in
            var request = HandleRecord.order(Column("id"))
            if let batch { request = request.filter(Column("batchId") == batch) }
            return try request.fetchAll(db)
        }
    }

    /// How many handles are in `state`, counted by SQLite (the table keeps every handle ever made).
    package func handleCount(state: HandleState) async throws -> Int {
        try await pool.read { db in try HandleRecord.filter(Column("state") == state.rawValue).fetchCount(db) }
    }

    package func handle(_ id: Int64) async throws -> HandleRecord? {
        try await pool.read { db in try HandleRecord.fetchOne(db, key: id) }
    }

    /// The newest events first, optionally after a given id (for polling) and of one VM.
    package func events(afterId: Int64? = nil, vm: Int64? = nil, limit: Int = 200) async throws -> [EventRecord] {
        try await pool.read { db in
            var request = EventRecord.order(Column("id").desc).limit(limit)
            if let afterId { request = request.filter(Column("id") > afterId) }
            if let vm { request = request.filter(Column("vmId") == vm) }
            return try request.fetchAll(db)
        }
    }
}

extension Store {
    /// An event that belongs to no single transition (an orphan domain, a libvirt reconnect).
    package func record(_ kind: String, vm: Int64? = nil, _ message: String) async throws {
        try await pool.write { db in try Store.log(db, kind, vm: vm, message) }
    }
}
