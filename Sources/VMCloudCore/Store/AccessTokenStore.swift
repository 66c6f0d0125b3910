import Foundation
import GRDB

/// A token's row: what it grants. Valid only while its handle is assigned to `vmId` in
/// `vmSession`, so release, cancel, loss and reset all end it without touching this table.
package struct AccessTokenRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "access_token"
    package var hash: String
    package var handleId: Int64
    package var vmId: Int64
    package var vmSession: Int64
    package var scope: AccessScope
    package var createdAt: Date

    package init(hash: String, handleId: Int64, vmId: Int64, vmSession: Int64, scope: AccessScope, createdAt: Date) {
        self.hash = hash
        self.handleId = handleId
        self.vmId = vmId
        self.vmSession = vmSession
        self.scope = scope
        self.createdAt = createdAt
    }
}


extension Store {
    /// Records the hashes of a handle's tokens (once; later calls change nothing).
    package func registerAccessTokens(_ records: [AccessTokenRecord]) async throws {
        try await pool.write { db in
            for record in records { try record.insert(db, onConflict: .ignore) }
        }
    }

    /// The grant behind a token hash, if the token exists and its handle still holds the VM.
    package func liveAccessGrant(hash: String) async throws -> AccessTokenRecord? {
        try await pool.read { db in
            try AccessTokenRecord.fetchOne(db, sql: """
                SELECT access_token.* FROM access_token JOIN handle ON handle.id = access_token.handleId
                WHERE access_token.hash = ? AND handle.state = 'assigned'
                  AND handle.vmId = access_token.vmId AND handle.vmSession = access_token.vmSession
                """, arguments: [hash])
        }
    }

    /// Of `hashes`, those whose grant is still live.
    package func liveAccessHashes(_ hashes: Set<String>) async throws -> Set<String> {
        guard !hashes.isEmpty else { return [] }
        return try await pool.read { db in
            let placeholders = Array(repeating: "?", count: hashes.count).joined(separator: ",")
            return Set(try String.fetchAll(db, sql: """
                SELECT access_token.hash FROM access_token JOIN handle ON handle.id = access_token.handleId
                WHERE access_token.hash IN (\(placeholders)) AND handle.state = 'assigned'
                  AND handle.vmId = access_token.vmId AND handle.vmSession = access_token.vmSession
                """, arguments: StatementArguments(Array(hashes))))
        }
    }
}
