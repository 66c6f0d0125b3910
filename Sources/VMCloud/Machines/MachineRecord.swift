import Foundation
import GRDB

/// What a generic VM is, as the seed's worker reports it. `stopped` and `destroyed` are ours:
/// a VM that halted (and was saved or discarded) and one whose domain and files are gone.
enum MachineStatus: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
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
    var hasDomain: Bool { [.installing, .running, .suspended].contains(self) }
}

/// What the store says a generic VM should be; the reconciler drives the status towards it.
enum MachineDesired: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case running, suspended, stopped, destroyed
}

/// One generic VM (`/v1/vms`), or the VM behind a keyed viewer (`/v1/viewers`).
struct MachineRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "machine"
    var id: Int64?
    var uuid: String
    var name: String
    var spec: MachineSpec
    var desired: MachineDesired
    var status: MachineStatus
    /// Why it failed (to start or to save), or what it is doing (download progress).
    var reason: String?
    var ip: String?
    var agentVersion: String?
    /// The agent said hello since the domain last started.
    var agentSeen: Bool
    /// `viewer:<project>/<kind>` for a keyed viewer: at most one live VM per owner key.
    var ownerKey: String?
    /// The viewer's access key (given to the launcher and written onto the input disk).
    var accessKey: String?
    var domainName: String
    var createdAt: Date
    var statusSince: Date
    /// The client that launched it (keyed viewers).
    var clientId: Int64? = nil

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
