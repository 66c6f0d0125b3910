import Foundation
import GRDB
import Testing
@testable import VMCloudCore

/// The pool's part of an engine pass (over libvirt's test driver, no guests) schedules its next
/// look at the earliest lease end, so that expiry does not wait for the poll interval, and acts
/// on a lease that has run out.
@Suite struct LeasePassTests {
    @Test func thePassLooksAgainAtTheLeaseEndAndReleasesThen() async throws {
        let harness = try await APIHarness()
        do {
            try await passes(harness.pool)
        } catch {
            await harness.close()
            throw error
        }
        await harness.close()
    }

    func passes(_ pool: Pool) async throws {
        let batch = try await pool.prepareBatch(size: 1, homepage: "http://a.test/", limits: BatchLimits(leaseSeconds: 60))
        let handle = try await pool.lock(batchId: batch.id!)
        let ends = try #require(handle.leaseExpiresAt)

        let plan = try await pool.plan(EnginePass(domains: [:]))
        #expect(plan.lookAgainAt == ends, "the next look is the lease's end")
        #expect(try await pool.store.handle(handle.id!)?.state == .waiting)

        // The end passes: the next pass releases the handle, and nothing is left to look at.
        try await pool.store.pool.write { db in
            try db.execute(sql: "UPDATE handle SET leaseExpiresAt = ? WHERE id = ?", arguments: [Date().addingTimeInterval(-0.1), handle.id!])
        }
        let after = try await pool.plan(EnginePass(domains: [:]))
        #expect(try await pool.store.handle(handle.id!)?.state == .released)
        #expect(after.lookAgainAt == nil)
    }
}
