import GRDB

/// Which client made a batch, handle or page (nil: the legacy caller on a trusted network), for the
/// application role's "only its own" rule.
extension Store {
    package func batchOwner(_ id: Int64) async throws -> Int64? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT clientId FROM batch WHERE id = ?", arguments: [id]) else {
                throw StoreError.batchNotFound(id)
            }
            return row["clientId"]
        }
    }

    package func handleOwner(_ id: Int64) async throws -> Int64? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT batch.clientId FROM handle JOIN batch ON batch.id = handle.batchId WHERE handle.id = ?
                """, arguments: [id]) else { throw StoreError.handleNotFound(id) }
            return row["clientId"]
        }
    }

    /// A page belongs to the client whose handle held its VM in that session, or whose job it
    /// is the result of.
    package func pageOwner(_ id: Int64) async throws -> Int64? {
        try await pool.read { db in
            guard let page = try PageRecord.fetchOne(db, key: id) else { throw Refusal.notFound("no page \(id)") }
            if let row = try Row.fetchOne(db, sql: """
                SELECT batch.clientId FROM handle JOIN batch ON batch.id = handle.batchId
                WHERE handle.vmId = ? AND handle.vmSession = ?
                """, arguments: [page.vmId, page.vmSession]) {
                return row["clientId"]
            }
            if let row = try Row.fetchOne(db, sql: "SELECT clientId FROM job WHERE pageId = ?", arguments: [id]) {
                return row["clientId"]
            }
            return nil
        }
    }
}
