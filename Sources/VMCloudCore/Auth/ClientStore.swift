import Foundation
import GRDB

package enum ClientStoreError: Error, Equatable, CustomStringConvertible {
    case emailTaken(String)
    case notFound(Int64)

    package var description: String {
        switch self {
        case .emailTaken(let email): return "a client with email \(email) is already registered"
        case .notFound(let id): return "no client \(id)"
        }
    }
}

/// Per-client figures for `GET /v1/clients`.
package struct ClientStats: Sendable, Equatable {
    package var requests: Int64
    package var batches: Int
    package var locks: Int
    package var jobsDone: Int
    package var jobsFailed: Int

    package init(requests: Int64, batches: Int, locks: Int, jobsDone: Int, jobsFailed: Int) {
        self.requests = requests
        self.batches = batches
        self.locks = locks
        self.jobsDone = jobsDone
        self.jobsFailed = jobsFailed
    }
}

extension Store {
    /// Registers a client and returns it with its key (shown once; only derivations are kept).
    package func createClient(email: String, role: ClientRole, groups: [String]) async throws -> (ClientRecord, ClientKey) {
        let key = ClientKey.generate()
        return try await pool.write { db in
            if try ClientRecord.filter(Column("email").collating(.nocase) == email).fetchCount(db) > 0 {
                throw ClientStoreError.emailTaken(email)
            }
            var client = ClientRecord(
                id: nil, email: email, role: role, groups: groups, keyHash: key.hash, signingKey: key.signingKey,
                requests: 0, revoked: false, createdAt: Date(), lastSeenAt: nil)
            try client.insert(db)
            try Store.log(db, "client.registered", "client \(client.id!) (\(role.rawValue)) registered")
            return (client, key)
        }
    }

    /// The first admin, with a key made by AdminKey (which has already saved it).
    package func createAdmin(key: ClientKey) async throws -> ClientRecord {
        try await pool.write { db in
            var client = ClientRecord(
                id: nil, email: "admin@localhost", role: .admin, groups: [], keyHash: key.hash, signingKey: key.signingKey,
                requests: 0, revoked: false, createdAt: Date(), lastSeenAt: nil)
            try client.insert(db)
            try Store.log(db, "client.registered", "admin client \(client.id!) created at first start")
            return client
        }
    }

    /// A new key for a client; the old one stops working at once.
    package func rotateKey(client id: Int64) async throws -> (ClientRecord, ClientKey) {
        let key = ClientKey.generate()
        return try await pool.write { db in
            guard var client = try ClientRecord.fetchOne(db, key: id), !client.revoked else { throw ClientStoreError.notFound(id) }
            client.keyHash = key.hash
            client.signingKey = key.signingKey
            try client.update(db)
            try Store.log(db, "client.key_rotated", "client \(id) has a new key")
            return (client, key)
        }
    }

    package func revokeClient(_ id: Int64) async throws {
        try await pool.write { db in
            guard var client = try ClientRecord.fetchOne(db, key: id), !client.revoked else { throw ClientStoreError.notFound(id) }
            client.revoked = true
            try client.update(db)
            try Store.log(db, "client.revoked", "client \(id) revoked")
        }
    }

    package func client(_ id: Int64) async throws -> ClientRecord? {
        try await pool.read { db in try ClientRecord.fetchOne(db, key: id) }
    }

    package func client(keyHash: String) async throws -> ClientRecord? {
        try await pool.read { db in try ClientRecord.filter(Column("keyHash") == keyHash).fetchOne(db) }
    }

    package func clients() async throws -> [ClientRecord] {
        try await pool.read { db in try ClientRecord.filter(Column("revoked") == false).order(Column("id")).fetchAll(db) }
    }

    package func hasAdmin() async throws -> Bool {
        try await pool.read { db in
            try ClientRecord.filter(Column("role") == ClientRole.admin.rawValue && Column("revoked") == false).fetchCount(db) > 0
        }
    }

    /// Remembers an accepted signature; false if it was seen before (a replay). Forgets those
    /// whose timestamps can no longer pass the freshness check anyway.
    package func rememberSignature(_ signature: String, now: Date = Date()) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM seen_signature WHERE seenAt < ?",
                           arguments: [now.addingTimeInterval(-2 * RequestSignature.maxSkew - 60)])
            try db.execute(sql: "INSERT OR IGNORE INTO seen_signature (signature, seenAt) VALUES (?, ?)", arguments: [signature, now])
            return db.changesCount == 1
        }
    }

    /// Adds request counts gathered in memory.
    package func addRequests(_ counts: [Int64: Int64], at now: Date = Date()) async throws {
        guard !counts.isEmpty else { return }
        try await pool.write { db in
            for (id, count) in counts {
                try db.execute(sql: "UPDATE client SET requests = requests + ?, lastSeenAt = ? WHERE id = ?", arguments: [count, now, id])
            }
        }
    }

    package func stats(client id: Int64) async throws -> ClientStats {
        try await pool.read { db in
            let requests = try Int64.fetchOne(db, sql: "SELECT requests FROM client WHERE id = ?", arguments: [id]) ?? 0
            let batches = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM batch WHERE clientId = ?", arguments: [id]) ?? 0
            // A lock is a handle that got a VM.
            let locks = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM handle JOIN batch ON batch.id = handle.batchId
                WHERE batch.clientId = ? AND handle.assignedAt IS NOT NULL
                """, arguments: [id]) ?? 0
            let jobs = try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM job WHERE clientId = ? GROUP BY state", arguments: [id])
            var done = 0, failed = 0
            for row in jobs {
                let state: String = row["state"]
                if state == "done" { done = row["n"] } else if state == "failed" { failed = row["n"] }
            }
            return ClientStats(requests: requests, batches: batches, locks: locks, jobsDone: done, jobsFailed: failed)
        }
    }
}
