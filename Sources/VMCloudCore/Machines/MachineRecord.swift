import Foundation
import GRDB

/// What a generic VM is, as the seed's worker reports it. `stopped` and `destroyed` are ours:
/// a VM that halted (and was saved or discarded) and one whose domain and files are gone.
package enum MachineStatus: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// Fetching images, making disks, creating the domain.
    case starting
    case failedToStart = "failed to start"
    /// The domain runs and its agent has not said hello yet: no user VNC.
    case installing
    case running
    case suspended
    /// Halted; its disks are being copied to their save targets (3 tries).
    case saving
    /// Halted; a save failed three times and the disks wait in `failed_to_save/`.
    case failedToSave = "failed to save"
    case stopped
    case destroyed

    /// A domain should exist for this status.
    package var hasDomain: Bool { [.installing, .running, .suspended].contains(self) }
}

/// What the store says a generic VM should be; the reconciler drives the status towards it.
package enum MachineDesired: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case running, suspended, stopped, destroyed
}

/// One generic VM (`/v1/vms`), or the VM behind a keyed viewer (`/v1/viewers`).
package struct MachineRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "machine"
    package var id: Int64?
    package var uuid: String
    package var name: String
    package var spec: MachineSpec
    package var desired: MachineDesired
    package var status: MachineStatus
    /// Why it failed (to start or to save), or what it is doing (download progress).
    package var reason: String?
    package var ip: String?
    package var agentVersion: String?
    /// The agent said hello since the domain last started.
    package var agentSeen: Bool
    /// `viewer:<project>/<kind>` for a keyed viewer: at most one live VM per owner key.
    package var ownerKey: String?
    /// The viewer's access key (given to the launcher and written onto the input disk).
    package var accessKey: String?
    package var domainName: String
    package var createdAt: Date
    package var statusSince: Date
    /// The client that launched it (keyed viewers).
    package var clientId: Int64? = nil

    package init(id: Int64? = nil, uuid: String, name: String, spec: MachineSpec, desired: MachineDesired, status: MachineStatus, reason: String? = nil, ip: String? = nil, agentVersion: String? = nil, agentSeen: Bool, ownerKey: String? = nil, accessKey: String? = nil, domainName: String, createdAt: Date, statusSince: Date, clientId: Int64? = nil) {
        self.id = id
        self.uuid = uuid
        self.name = name
        self.spec = spec
        self.desired = desired
        self.status = status
        self.reason = reason
        self.ip = ip
        self.agentVersion = agentVersion
        self.agentSeen = agentSeen
        self.ownerKey = ownerKey
        self.accessKey = accessKey
        self.domainName = domainName
        self.createdAt = createdAt
        self.statusSince = statusSince
        self.clientId = clientId
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
