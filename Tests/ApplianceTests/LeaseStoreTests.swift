import Foundation
import GRDB
import Testing
@testable import VMCloudCore

/// Leases and batch expiries in the store (Store/Leases.swift), on a real SQLite file, with the
/// pass's clock given explicitly: what ends, when, and what it leaves behind.
@Suite struct LeaseStoreTests {
    /// A batch with a lease and a VM locked by one handle.
    func lockedHandle(_ store: Store, lease: Int) async throws -> (HandleRecord, vm: Int64) {
        let batch = try await store.createBatch(size: 1, homepage: "http://a.test/", limits: BatchLimits(leaseSeconds: lease))
        let vm = try await makeIdleVM(store)
        #expect(try await store.grantIdleVMs().map(\.vmId) == [vm])
        _ = try await store.configured(vm: vm, homepage: "http://a.test/")
        let handle = try await store.lock(batchId: batch.id!)
        #expect(handle.state == .assigned && handle.vmId == vm)
        return (handle, vm)
    }

    func kinds(_ store: Store, handle: Int64) async throws -> [String] {
        try await store.events(limit: 1000).reversed().filter { $0.handleId == handle }.map(\.kind)
    }

    @Test func aHandleNotKeptAliveIsReleasedAtItsLeaseEndAndItsVMReset() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let locked = Date()
        let (handle, vm) = try await lockedHandle(store, lease: 10)
        let ends = try #require(handle.leaseExpiresAt)
        #expect(handle.leaseSeconds == 10 && abs(ends.timeIntervalSince(locked) - 10) < 1)
        #expect(try await store.pool.read { try Store.nextDeadline($0) } == ends)

        // Not yet due: nothing ends.
        #expect(try await store.expireDeadlines(now: ends.addingTimeInterval(-0.5)) == Store.Expired())
        // A keepalive moves the end; a poll does too.
        try await Task.sleep(for: .milliseconds(50))
        let kept = try await store.keepAlive(handleId: handle.id!)
        #expect(try #require(kept.leaseExpiresAt) > ends)
        try await Task.sleep(for: .milliseconds(50))
        let polled = try #require(try await store.pollHandle(handle.id!))
        #expect(try #require(polled.leaseExpiresAt) > kept.leaseExpiresAt!)
        #expect(try await store.expireDeadlines(now: ends.addingTimeInterval(0.05)) == Store.Expired(), "the old end no longer counts")

        // Due: released as the application would have, its VM to reset and back to the pool.
        let expired = try await store.expireDeadlines(now: polled.leaseExpiresAt!)
        #expect(expired == Store.Expired(leases: [handle.id!]))
        let released = try #require(try await store.handle(handle.id!))
        #expect(released.state == .released)
        #expect(released.reason == "lease expired (10 s without a keepalive)")
        let row = try #require(try await store.vm(vm))
        #expect(row.state == .resetting && row.batchId == nil && row.handleId == nil)
        #expect(try await kinds(store, handle: handle.id!).suffix(2) == ["handle.lease_expired", "handle.released"])
        #expect(try await store.pool.read { try Store.nextDeadline($0) } == nil)

        // An ended handle has nothing to keep alive, and a poll leaves it alone.
        await #expect(throws: Refusal.conflict(code: "handle_ended", "handle \(handle.id!) is released: there is nothing to keep alive")) {
            try await store.keepAlive(handleId: handle.id!)
        }
        #expect(try await store.pollHandle(handle.id!) == released)
    }

    /// A keepalive that comes after the end but before the pass that releases is refused, not
    /// taken as a renewal.
    @Test func aKeepaliveAfterTheEndIsRefused() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (handle, _) = try await lockedHandle(store, lease: 5)
        try await store.pool.write { db in
            try db.execute(sql: "UPDATE handle SET leaseExpiresAt = ? WHERE id = ?", arguments: [Date().addingTimeInterval(-1), handle.id!])
        }
        await #expect(throws: Refusal.conflict(code: "lease_expired", "handle \(handle.id!)'s lease has run out: it is being released")) {
            try await store.keepAlive(handleId: handle.id!)
        }
    }

    @Test func aBatchPastItsExpiryIsCancelledAndItsWaitingHandlesWithIt() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let expiresAt = Date().addingTimeInterval(5)
        let batch = try await store.createBatch(size: 1, homepage: "http://a.test/", limits: BatchLimits(expiresAt: expiresAt))
        let first = try await store.lock(batchId: batch.id!), second = try await store.lock(batchId: batch.id!)
        #expect(first.state == .waiting && second.state == .waiting && first.leaseExpiresAt == nil)
        let deadline = try #require(try await store.pool.read { try Store.nextDeadline($0) })
        #expect(abs(deadline.timeIntervalSince(expiresAt)) < 0.001)

        #expect(try await store.expireDeadlines(now: expiresAt.addingTimeInterval(-0.5)) == Store.Expired())
        #expect(try await store.expireDeadlines(now: expiresAt) == Store.Expired(batches: [batch.id!]))
        #expect(try await store.batch(batch.id!)?.state == .cancelled)
        for id in [first.id!, second.id!] {
            let handle = try #require(try await store.handle(id))
            #expect(handle.state == .cancelled && handle.reason == "batch expired")
        }
        let kinds = try await store.events(limit: 1000).reversed().filter { $0.batchId == batch.id }.map(\.kind)
        #expect(kinds.suffix(2) == ["batch.expired", "batch.cancelled"])
        #expect(try await store.pool.read { try Store.nextDeadline($0) } == nil)
        // A lock after the expiry is the cancelled batch's: allowed, never assigned.
        #expect(try await store.lock(batchId: batch.id!).state == .cancelled)
    }

    /// Every pass asks for the next deadline: SQLite answers from the partial indexes, not by
    /// reading every handle and batch ever kept.
    @Test func theNextDeadlineIsReadFromThePartialIndexes() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plans = try await store.pool.read { db in
            try Store.deadlineQueries.map { sql in try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String? ?? "" }.joined(separator: "; ") }
        }
        #expect(plans[0].contains("handle_live_lease"), "\(plans[0])")
        #expect(plans[1].contains("batch_open_expiry"), "\(plans[1])")
    }
}
