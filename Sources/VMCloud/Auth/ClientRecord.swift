import Foundation
import GRDB

/// A registered client (table `client`): an application or an admin, known by its email.
struct ClientRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "client"
    var id: Int64?
    var email: String
    var role: ClientRole
    /// Stored as JSON text.
    var groups: [String]
    var keyHash: String
    var signingKey: Data
    /// Authenticated requests so far (flushed from memory every second, see RequestCounter).
    var requests: Int64
    var revoked: Bool
    var createdAt: Date
    var lastSeenAt: Date?

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    var identity: ClientIdentity { ClientIdentity(clientId: id, role: role, groups: Set(groups)) }
}
