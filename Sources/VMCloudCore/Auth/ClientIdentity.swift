import GRDB

/// What a registered client may do: admin (everything) or application (its own batches,
/// handles, jobs and viewers).
package enum ClientRole: String, Codable, Sendable, DatabaseValueConvertible {
    case admin, application
}

/// Who is calling, as established by AuthMiddleware for one request.
package struct ClientIdentity: Sendable, Equatable {
    /// The registered client; nil for an unauthenticated caller on a trusted network, which
    /// may use the six vmcloud endpoints only.
    package var clientId: Int64?
    package var role: ClientRole
    /// Groups the client holds (smart proxy resources require some); admin holds every group.
    package var groups: Set<String>

    package init(clientId: Int64? = nil, role: ClientRole, groups: Set<String>) {
        self.clientId = clientId
        self.role = role
        self.groups = groups
    }

    package var isAdmin: Bool { role == .admin }

    /// The legacy control app on a trusted network (loopback by default).
    package static let trustedNetwork = ClientIdentity(clientId: nil, role: .admin, groups: [])

    /// May this caller act on something created by `owner` (nil: created by an admin or by
    /// the legacy control app)?
    package func mayAccess(owner: Int64?) -> Bool {
        isAdmin || (owner != nil && owner == clientId)
    }

    /// Whether every one of `required` is held.
    package func holds(_ required: Set<String>) -> Bool {
        isAdmin || required.isSubset(of: groups)
    }
}
