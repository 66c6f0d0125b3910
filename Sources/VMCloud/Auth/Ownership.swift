import GRDB

/// Which client made a batch, handle or page (nil: the legacy caller on a trusted network), for the
/// application role's "only its own" rule.
extension Store {
    func batchOwner(_ id: Int64) async throws -> Int64? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT clientId FROM batch WHERE id = ?", arguments: [id]) else {
                throw StoreError.batchNotFound(id)
            }
            return row["clientId"]
        }
    }

    func handleOwner(_ id: Int64) async throws -> Int64? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT batch.clientId FROM handle JOIN batch ON batch.id = handle.batchId WHERE handle.id = ?
                """, arguments: [id]) else { throw StoreError.handleNotFound(id) }
            return row["clientId"]
        }
    }

    /// A page belongs to the client whose handle held its VM in that session, or whose job it
    /// is the result of.
    func pageOwner(_ id: Int64) async throws -> Int64? {
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

extension AppRequestContext {
    /// The caller may act on what `owner` made; otherwise `hidden` is thrown (a 404, so that
    /// another client's ids do not leak).
    func requireAccess(owner: Int64?, else hidden: @autoclosure () -> Error) throws {
        guard try requireClient().mayAccess(owner: owner) else { throw hidden() }
    }
}
