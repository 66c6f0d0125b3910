import Foundation
import GRDB

/// What a batch may say about its own end, so that an application that crashes does not hold
/// its VMs for good.
package struct BatchLimits: Sendable, Equatable, CustomStringConvertible {
    /// Each handle is released once nobody kept it alive (polled or sent a keepalive) this long.
    package var leaseSeconds: Int?
    /// The batch is cancelled at this time.
    package var expiresAt: Date?

    package init(leaseSeconds: Int? = nil, expiresAt: Date? = nil) {
        self.leaseSeconds = leaseSeconds
        self.expiresAt = expiresAt
    }

    package static let none = BatchLimits()

    /// For the batch.created event: nothing when there are no limits.
    package var description: String {
        (leaseSeconds.map { ", lease \($0) s" } ?? "") + (expiresAt.map { ", expires \($0.ISO8601Format())" } ?? "")
    }
}

/// Leases and expiries: renewed by the application's polls and keepalives, acted on by the pool's
/// part of each engine pass (`expireDeadlines`), which also learns when to look again.
extension Store {
    /// A keepalive: the handle's lease runs again from now. Refused (409) for a handle that
    /// ended, or whose lease already ran out (its release is a pass away).
    package func keepAlive(handleId: Int64) async throws -> HandleRecord {
        try await pool.write { db in
            guard var handle = try HandleRecord.fetchOne(db, key: handleId) else { throw StoreError.handleNotFound(handleId) }
            guard handle.state == .waiting || handle.state == .assigned else {
                throw Refusal.conflict(code: "handle_ended", "handle \(handleId) is \(handle.state.rawValue): there is nothing to keep alive")
            }
            guard try Store.renew(db, &handle, now: Date()) else {
                throw Refusal.conflict(code: "lease_expired", "handle \(handleId)'s lease has run out: it is being released")
            }
            return handle
        }
    }

    /// A poll of a handle (handle-status, `GET /v1/handles/{id}`) keeps it alive too. Writes only
    /// for a live handle with a lease that has not run out; returns the handle as it now is.
    package func pollHandle(_ id: Int64) async throws -> HandleRecord? {
        guard let handle = try await handle(id) else { return nil }
        guard handle.leaseExpiresAt != nil, handle.state == .waiting || handle.state == .assigned else { return handle }
        return try await pool.write { db in
            guard var handle = try HandleRecord.fetchOne(db, key: id) else { return nil }
            if handle.state == .waiting || handle.state == .assigned { _ = try Store.renew(db, &handle, now: Date()) }
            return handle
        }
    }

    /// Moves a live handle's lease to `now` + its lease; false when it has already run out.
    /// A handle without a lease has nothing to renew (true).
    private static func renew(_ db: Database, _ handle: inout HandleRecord, now: Date) throws -> Bool {
        guard let lease = handle.leaseSeconds, let ends = handle.leaseExpiresAt else { return true }
        guard ends > now else { return false }
        handle.leaseExpiresAt = now.addingTimeInterval(TimeInterval(lease))
        try handle.update(db)
        return true
    }

    /// The earliest lease end of a live handle or expiry of an open batch (nil: none). The
    /// conditions are the partial indexes' own (migration "v9-leases"), so SQLite uses them.
    package static func nextDeadline(_ db: Database) throws -> Date? {
        try deadlineQueries.compactMap { try Date.fetchOne(db, sql: $0) }.min()
    }

    static let deadlineQueries = [
        "SELECT MIN(leaseExpiresAt) FROM handle WHERE state IN ('waiting', 'assigned') AND leaseExpiresAt IS NOT NULL",
        "SELECT MIN(expiresAt) FROM batch WHERE state = 'open' AND expiresAt IS NOT NULL",
    ]

    /// What a pass's deadlines ended.
    package struct Expired: Equatable, Sendable {
        package var leases: [Int64] = []
        package var batches: [Int64] = []
    }

    /// Ends what is due at `now`, each as the application would have: a handle whose lease ran
    /// out is released (an assigned VM goes to reset), a batch past its expiry is cancelled.
    /// One transaction, each end with its own event before the usual release or cancel event.
    package func expireDeadlines(now: Date = Date()) async throws -> Expired {
        try await pool.write { db in
            var expired = Expired()
            for var batch in try BatchRecord.filter(sql: "state = 'open' AND expiresAt IS NOT NULL AND expiresAt <= ?", arguments: [now]).fetchAll(db) {
                try Store.log(db, "batch.expired", batch: batch.id, "expiresAt \(batch.expiresAt!.ISO8601Format()) passed: cancelled")
                _ = try Store.cancel(db, &batch, reason: "batch expired")
                expired.batches.append(batch.id!)
            }
            for var handle in try HandleRecord.filter(sql: """
                state IN ('waiting', 'assigned') AND leaseExpiresAt IS NOT NULL AND leaseExpiresAt <= ?
                """, arguments: [now]).fetchAll(db) {
                let message = "no keepalive for \(handle.leaseSeconds ?? 0) s: released"
                try Store.log(db, "handle.lease_expired", vm: handle.vmId, batch: handle.batchId, handle: handle.id, message)
                _ = try Store.release(db, &handle, reason: "lease expired (\(handle.leaseSeconds ?? 0) s without a keepalive)")
                expired.leases.append(handle.id!)
            }
            return expired
        }
    }
}
