import Foundation
import GRDB

/// A registered client (table `client`): an application or an admin, known by its email.
package struct ClientRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "client"
    package var id: Int64?
    package var email: String
    package var role: ClientRole
    /// Stored as JSON text.
    package var groups: [String]
    package var keyHash: String
    package var signingKey: Data
    /// Authenticated requests so far (flushed from memory every second, see RequestCounter).
    package var requests: Int64
    package var revoked: Bool
    package var createdAt: Date
    package var lastSeenAt: Date?

    package init(id: Int64? = nil, email: String, role: ClientRole, groups: [String], keyHash: String, signingKey: Data, requests: Int64, revoked: Bool, createdAt: Date, lastSeenAt: Date? = nil) {
        self.id = id
        self.email = email
        self.role = role
        self.groups = groups
        self.keyHash = keyHash
        self.signingKey = signingKey
        self.requests = requests
        self.revoked = revoked
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    package var identity: ClientIdentity { ClientIdentity(clientId: id, role: role, groups: Set(groups)) }
}
