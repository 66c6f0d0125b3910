import Foundation
import GRDB

package enum MachineStoreError: Error, CustomStringConvertible {
    case notFound(String)
    case nameTaken(String)

    package var description: String {
        switch self {
        case .notFound(let ref): return "no VM '\(ref)'"
        case .nameTaken(let name): return "a VM named '\(name)' exists already"
        }
    }
}

/// The generic VMs' rows: creation, lookups by uuid or name, desired-state changes, and the
/// reconciler's status transitions. Every change is one transaction with its event.
extension Store {
    package static func logMachine(_ db: Database, _ kind: String, machine: Int64, _ message: String) throws {
        var event = EventRecord(id: nil, at: Date(), kind: kind, vmId: nil, batchId: nil, handleId: nil, message: message, machineId: machine)
        try event.insert(db)
    }

    /// Inserts a machine that should run. The domain name derives from the row id, so no crash
    /// can ever give one row two domains.
    package func createMachine(name: String, spec: MachineSpec, ownerKey: String? = nil, accessKey: String? = nil) async throws -> MachineRecord {
        do {
            return try await pool.write { db in try Self.insertMachine(db, name: name, spec: spec, ownerKey: ownerKey, accessKey: accessKey, prefix: self.machineDomainPrefix) }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw MachineStoreError.nameTaken(name)
        }
    }

    package var machineDomainPrefix: String { "vmcloud-\(instanceId)-m" }

    package static func insertMachine(_ db: Database, name: String, spec: MachineSpec, ownerKey: String?, accessKey: String?, prefix: String) throws -> MachineRecord {
        let now = Date()
        var machine = MachineRecord(
            id: nil, uuid: UUID().uuidString.lowercased(), name: name, spec: spec, desired: .running, status: .starting,
            reason: nil, ip: nil, agentVersion: nil, agentSeen: false, ownerKey: ownerKey, accessKey: accessKey,
            domainName: "pending-\(UUID().uuidString)", createdAt: now, statusSince: now)
        try machine.insert(db)
        machine.domainName = prefix + String(machine.id!)
        try machine.update(db)
        try logMachine(db, "machine.created", machine: machine.id!, "\(name) (\(machine.uuid)) wanted running")
        return machine
    }

    /// Exactly one machine per owner key: the existing wanted one, or a new one made by
    /// `make` in the same transaction. The partial unique index settles concurrent callers.
    package func ensureMachine(ownerKey: String, client: Int64? = nil, make: @Sendable () -> (name: String, spec: MachineSpec, accessKey: String)) async throws -> (MachineRecord, created: Bool) {
        for _ in 0..<3 {
            do {
                return try await pool.write { db in
                    if let existing = try MachineRecord.filter(Column("ownerKey") == ownerKey && Column("desired") != MachineDesired.destroyed.rawValue).fetchOne(db) {
                        return (existing, false)
                    }
                    let made = make()
                    var machine = try Self.insertMachine(db, name: made.name, spec: made.spec, ownerKey: ownerKey, accessKey: made.accessKey, prefix: self.machineDomainPrefix)
                    if let client {
                        try db.execute(sql: "UPDATE machine SET clientId = ? WHERE id = ?", arguments: [client, machine.id])
                        machine.clientId = client
                    }
                    return (machine, true)
                }
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                continue  // another writer won; the next round finds its row
            }
        }
        throw MachineStoreError.nameTaken(ownerKey)
    }

    package func machines(includeDestroyed: Bool = false) async throws -> [MachineRecord] {
        try await pool.read { db in
            var request = MachineRecord.order(Column("id"))
            if !includeDestroyed { request = request.filter(Column("status") != MachineStatus.destroyed.rawValue) }
            return try request.fetchAll(db)
        }
    }

    /// Every machine's planning row (destroyed ones too: their domain names are known, not orphans),
    /// without decoding the specs.
    package func machineRows() async throws -> [MachinePlan.Row] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, domainName, desired, status, agentSeen, json_extract(spec, '$.runAgent') AS runAgent
                FROM machine ORDER BY id
                """).map { row in
                MachinePlan.Row(id: row["id"], domainName: row["domainName"], desired: row["desired"], status: row["status"],
                                agentSeen: row["agentSeen"], runAgent: row["runAgent"])
            }
        }
    }

    package func machine(_ id: Int64) async throws -> MachineRecord? {
        try await pool.read { db in try MachineRecord.fetchOne(db, key: id) }
    }

    /// A uuid wins over a name; a name finds the wanted VM of that name, else the newest.
    package func machine(ref: String) async throws -> MachineRecord {
        let found = try await pool.read { db -> MachineRecord? in
            if UUID(uuidString: ref) != nil, let byUUID = try MachineRecord.filter(Column("uuid") == ref.lowercased()).fetchOne(db) {
                return byUUID
            }
            return try MachineRecord.filter(Column("name") == ref)
                .order(sql: "desired = 'destroyed', id DESC").fetchOne(db)
        }
        guard let found else { throw MachineStoreError.notFound(ref) }
        return found
    }

    package func machine(ownerKey: String) async throws -> MachineRecord? {
        try await pool.read { db in
            try MachineRecord.filter(Column("ownerKey") == ownerKey && Column("desired") != MachineDesired.destroyed.rawValue).fetchOne(db)
        }
    }

    /// Sets what the VM should be. Refused (nil) once it is destroyed or wanted destroyed.
    @discardableResult
    package func setDesired(machine id: Int64, _ desired: MachineDesired) async throws -> MachineRecord? {
        try await pool.write { db in
            guard var machine = try MachineRecord.fetchOne(db, key: id), machine.desired != .destroyed else { return nil }
            guard machine.desired != desired else { return machine }
            try Self.logMachine(db, "machine.desired", machine: id, "wanted \(desired.rawValue) (was \(machine.desired.rawValue))")
            machine.desired = desired
            try machine.update(db)
            return machine
        }
    }

    package func updateSpec(machine id: Int64, _ change: @Sendable (inout MachineSpec) -> Void, event: String) async throws -> MachineRecord {
        try await pool.write { db in
            guard var machine = try MachineRecord.fetchOne(db, key: id) else { throw MachineStoreError.notFound(String(id)) }
            change(&machine.spec)
            try machine.update(db)
            try Self.logMachine(db, "machine.modified", machine: id, event)
            return machine
        }
    }

    /// The reconciler's transition: only from a status it expects, so a late or repeated
    /// action changes nothing. Returns whether it happened.
    @discardableResult
    package func setStatus(machine id: Int64, from: Set<MachineStatus>, to status: MachineStatus, reason: String? = nil,
                   agentSeen: Bool? = nil, event: String? = nil) async throws -> Bool {
        try await pool.write { db in
            guard var machine = try MachineRecord.fetchOne(db, key: id), from.contains(machine.status) else { return false }
            try Self.moveMachine(db, &machine, to: status, event: event ?? "\(machine.status.rawValue) -> \(status.rawValue)" + (reason.map { ": \($0)" } ?? ""))
            machine.reason = reason
            if let agentSeen { machine.agentSeen = agentSeen }
            try machine.update(db)
            return true
        }
    }

    /// The one place a generic VM's status changes: checks the edge against `MachineLifecycle`,
    /// logs it and stamps the time (the caller saves the row in the same transaction).
    package static func moveMachine(_ db: Database, _ machine: inout MachineRecord, to status: MachineStatus, event: String) throws {
        guard MachineLifecycle.allows(machine.status, status) else {
            throw MachineLifecycle.IllegalEdge(machine: machine.id ?? 0, from: machine.status, to: status)
        }
        if machine.status != status {
            machine.statusSince = Date()
            try logMachine(db, "machine.\(status.rawValue.replacingOccurrences(of: " ", with: "_"))", machine: machine.id!, event)
        }
        machine.status = status
        if status == .starting || status == .stopped || status == .destroyed { machine.ip = nil }
    }

    /// Progress or a passing note (no event; the status stays).
    package func setReason(machine id: Int64, _ reason: String?) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE machine SET reason = ? WHERE id = ? AND status = 'starting'", arguments: [reason, id])
        }
    }

    /// The agent's hello: records the IP and, from installing, makes the VM running.
    package func machineHello(machine id: Int64, ip: String?, agentVersion: String?) async throws -> Bool {
        try await pool.write { db in
            guard var machine = try MachineRecord.fetchOne(db, key: id), machine.status.hasDomain else { return false }
            machine.ip = ip
            machine.agentVersion = agentVersion
            machine.agentSeen = true
            if machine.status == .installing {
                try Self.moveMachine(db, &machine, to: .running, event: "agent hello (ip \(ip ?? "-")): installing -> running")
            }
            try machine.update(db)
            return true
        }
    }

    package func recordMachine(_ kind: String, machine id: Int64, _ message: String) async throws {
        try await pool.write { db in try Self.logMachine(db, kind, machine: id, message) }
    }

    package func machineEvents(machine id: Int64, limit: Int = 200) async throws -> [EventRecord] {
        try await pool.read { db in
            try EventRecord.filter(Column("machineId") == id).order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }
}
