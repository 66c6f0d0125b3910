import Foundation
import GRDB

/// A smart proxy resource (`/v1/resources`): a stable address (`/r/{id}/`,
/// `/smart_proxy/{id}/{groups}/`) for a service on a guest port of a VM that the appliance
/// starts on the first request and stops when idle.
package struct ResourceRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "resource"
    /// The slug in the URL (letters, digits, `-`, `_`; starts with a letter; 1 to 64).
    package var id: String
    /// The VM that serves it, made anew from this spec whenever it starts (network: NAT).
    package var spec: MachineSpec
    /// The guest TCP port requests are forwarded to.
    package var port: Int
    /// Groups a caller must hold, sorted, comma-separated ("" for none).
    package var groups: String
    /// Seconds without a request or an open connection after which the VM is stopped.
    package var idleTimeout: Int
    package var createdAt: Date

    package init(id: String, spec: MachineSpec, port: Int, groups: String, idleTimeout: Int, createdAt: Date) {
        self.id = id
        self.spec = spec
        self.port = port
        self.groups = groups
        self.idleTimeout = idleTimeout
        self.createdAt = createdAt
    }

    package var requiredGroups: Set<String> { Set(groups.split(separator: ",").map(String.init)) }

    /// The owner key of the resource's VM: at most one live VM per key (partial unique index).
    package static func ownerKey(_ id: String) -> String { "resource:\(id)" }
    package var ownerKey: String { Self.ownerKey(id) }
    /// The VM's name; `resource.` names are reserved (MachineRequest refuses them).
    package var machineName: String { "resource.\(id)" }
}
