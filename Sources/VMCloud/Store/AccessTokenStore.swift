import Foundation
import GRDB

/// A token's row: what it grants. Valid only while its handle is assigned to `vmId` in
/// `vmSession`, so release, cancel, loss and reset all end it without touching this table.
struct AccessTokenRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "access_token"
    var hash: String
    var handleId: Int64
    var vmId: Int64
    var vmSession: Int64
    var scope: AccessScope
    var createdAt: Date
}


extension Store {
    /// Records the hashes of a handle's tokens (once; later calls change nothing).
    func registerAccessTokens(_ records: [AccessTokenRecord]) async throws {
        try await pool.write { db in
            for record in records { try record.insert(db, onConflict: .ignore) }
        }
    }

    /// The grant behind a token hash, if the token exists and its handle still holds the VM.
    func liveAccessGrant(hash: String) async throws -> AccessTokenRecord? {
        try await pool.read { db in
            try AccessTokenRecord.fetchOne(db, sql: """
                SELECT access_token.* FROM access_token JOIN handle ON handle.id = access_token.handleId
                WHERE access_token.hash = ? AND handle.state = 'assigned'
                  AND handle.vmId = access_token.vmId AND handle.vmSession = access_token.vmSession
                """, arguments: [hash])
        }
    }

    /// Of `hashes`, those whose grant is still live.
    func liveAccessHashes(_ hashes: Set<String>) async throws -> Set<String> {
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
