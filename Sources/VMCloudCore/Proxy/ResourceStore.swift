import Foundation
import GRDB

package enum ResourceStoreError: Error, CustomStringConvertible {
    case notFound(String)
    case exists(String)

    package var description: String {
        switch self {
        case .notFound(let id): return "no resource '\(id)'"
        case .exists(let id): return "a resource '\(id)' exists already"
        }
    }
}

/// Resources and their VMs. Every change is one transaction with its event; the resource's VM
/// is made in the same transaction that reads the resource, so a VM never outlives its
/// resource's deletion, and the owner key's partial unique index keeps it to one.
extension Store {
    package func createResource(_ resource: ResourceRecord) async throws {
        do {
            try await pool.write { db in
                try resource.insert(db)
                try Self.log(db, "resource.created", "resource \(resource.id): port \(resource.port), groups [\(resource.groups)], idle \(resource.idleTimeout) s")
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY || error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw ResourceStoreError.exists(resource.id)
        }
    }

    package func resources() async throws -> [ResourceRecord] {
        try await pool.read { db in try ResourceRecord.order(Column("id")).fetchAll(db) }
    }

    package func resource(_ id: String) async throws -> ResourceRecord? {
        try await pool.read { db in try ResourceRecord.fetchOne(db, key: id) }
    }

    /// The resource and its live VM (not wanted destroyed), if any.
    package func resourceWithMachine(_ id: String) async throws -> (ResourceRecord, MachineRecord?)? {
        try await pool.read { db in
            guard let resource = try ResourceRecord.fetchOne(db, key: id) else { return nil }
            let machine = try MachineRecord.filter(Column("ownerKey") == resource.ownerKey && Column("desired") != MachineDesired.destroyed.rawValue).fetchOne(db)
            return (resource, machine)
        }
    }

    /// Every resource with its live VM, for the idle stopper and the listing.
    package func resourcesWithMachines() async throws -> [(ResourceRecord, MachineRecord?)] {
        try await pool.read { db in
            let machines = try MachineRecord
                .filter(sql: "ownerKey LIKE 'resource:%' AND desired != ?", arguments: [MachineDesired.destroyed.rawValue])
                .fetchAll(db)
            let byKey = Dictionary(machines.map { ($0.ownerKey!, $0) }, uniquingKeysWith: { first, _ in first })
            return try ResourceRecord.order(Column("id")).fetchAll(db).map { ($0, byKey[$0.ownerKey]) }
        }
    }

    /// Exactly one VM for the resource: its existing one, wanted running (a failed start is
    /// tried again), or a new one. nil: the resource does not exist (deleted meanwhile).
    package func ensureResourceMachine(_ id: String) async throws -> (MachineRecord, created: Bool)? {
        for _ in 0..<3 {
            do {
                return try await pool.write { db -> (MachineRecord, Bool)? in
                    guard let resource = try ResourceRecord.fetchOne(db, key: id) else { return nil }
                    let key = resource.ownerKey
                    if var machine = try MachineRecord.filter(Column("ownerKey") == key && Column("desired") != MachineDesired.destroyed.rawValue).fetchOne(db) {
                        if machine.status == .failedToStart {
                            try Self.moveMachine(db, &machine, to: .starting, event: "a proxy request after a failed start: a new try")
                            machine.reason = nil
                        }
                        if machine.desired != .running {
                            try Self.logMachine(db, "machine.desired", machine: machine.id!, "wanted running (was \(machine.desired.rawValue)): a proxy request for \(id)")
                            machine.desired = .running
                        }
                        try machine.update(db)
                        return (machine, false)
                    }
                    let machine = try Self.insertMachine(db, name: resource.machineName, spec: resource.spec, ownerKey: key, accessKey: nil, prefix: self.machineDomainPrefix)
                    return (machine, true)
                }
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                continue  // another writer made it; the next round finds its row
            }
        }
        throw MachineStoreError.nameTaken(ResourceRecord.ownerKey(id))
    }

    /// Scale to zero: the resource's VM wanted stopped, unless a request wants it again.
    package func stopResourceMachine(_ id: String, reason: String) async throws -> MachineRecord? {
        try await pool.write { db in
            guard let resource = try ResourceRecord.fetchOne(db, key: id),
                  var machine = try MachineRecord.filter(Column("ownerKey") == resource.ownerKey && Column("desired") == MachineDesired.running.rawValue).fetchOne(db)
            else { return nil }
            machine.desired = .stopped
            try machine.update(db)
            try Self.logMachine(db, "machine.desired", machine: machine.id!, "wanted stopped (was running): \(reason)")
            return machine
        }
    }

    /// Removes the resource and wants its VM destroyed, in one transaction.
    package func deleteResource(_ id: String) async throws -> ResourceRecord {
        try await pool.write { db in
            guard let resource = try ResourceRecord.fetchOne(db, key: id) else { throw ResourceStoreError.notFound(id) }
            for var machine in try MachineRecord.filter(Column("ownerKey") == resource.ownerKey && Column("desired") != MachineDesired.destroyed.rawValue).fetchAll(db) {
                try Self.logMachine(db, "machine.desired", machine: machine.id!, "wanted destroyed (was \(machine.desired.rawValue)): resource \(id) deleted")
                machine.desired = .destroyed
                try machine.update(db)
            }
            _ = try resource.delete(db)
            try Self.log(db, "resource.deleted", "resource \(id)")
            return resource
        }
    }
}
