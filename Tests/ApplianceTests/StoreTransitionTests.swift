import Foundation
import GRDB
import Testing
@testable import Appliance

/// The pool's state machine as stored in a real SQLite file.
@Suite struct StoreTransitionTests {
    @Test func lockQueuesFIFOUntilVMsArePrepared() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let batch = try await store.createBatch(size: 2, homepage: "http://example.test/")
        let h1 = try await store.lock(batchId: batch.id!)
        let h2 = try await store.lock(batchId: batch.id!)
        #expect(h1.state == .waiting && h2.state == .waiting)

        let vm1 = try await makeIdleVM(store)
        let vm2 = try await makeIdleVM(store)
        let grants = try await store.grantIdleVMs()
        #expect(grants.map(\.vmId) == [vm1, vm2])
        #expect(grants.allSatisfy { $0.homepage == "http://example.test/" })
        #expect(try await store.grantIdleVMs().isEmpty, "a batch is granted at most its size")

        // The second VM answers first: it goes to the oldest waiting handle.
        #expect(try await store.configured(vm: vm2, homepage: "http://example.test/") == .prepared)
        #expect(try await store.handle(h1.id!)?.vmId == vm2)
        #expect(try await store.handle(h2.id!)?.state == .waiting)
        #expect(try await store.configured(vm: vm1, homepage: "http://example.test/") == .prepared)
        #expect(try await store.handle(h2.id!)?.vmId == vm1)
        #expect(try await store.vm(vm1)?.state == .locked)
        // A duplicate ack changes nothing.
        #expect(try await store.configured(vm: vm1, homepage: "http://other/") == .ignored)
    }

    @Test func releasedVMServesTheNextWaitingHandleThenReturnsToThePool() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (batch, vms) = try await makeGrantedBatch(store, size: 1)
        let vm = vms[0]
        _ = try await store.configured(vm: vm, homepage: "http://a.test/")
        let h1 = try await store.lock(batchId: batch.id!)
        #expect(h1.state == .assigned && h1.vmId == vm)
        let h2 = try await store.lock(batchId: batch.id!)
        #expect(h2.state == .waiting, "the batch has 0 VMs remaining, the lock still succeeds")

        #expect(try await store.release(handleId: h1.id!) == .reset(vmId: vm))
        #expect(try await store.vm(vm)?.state == .resetting)
        #expect(try await store.resetDone(vm: vm) == .configure(homepage: "http://a.test/"))
        _ = try await store.configured(vm: vm, homepage: "http://a.test/")
        #expect(try await store.handle(h2.id!)?.state == .assigned)
        #expect(try await store.handle(h2.id!)?.vmId == vm)

        // No one waits now: after release and reset the VM is a free pool VM again.
        #expect(try await store.release(handleId: h2.id!) == .reset(vmId: vm))
        #expect(try await store.resetDone(vm: vm) == .idle)
        let after = try #require(try await store.vm(vm))
        #expect(after.state == .idle && after.batchId == nil && after.homepage == nil && after.idleSince != nil)
        // Releasing twice is harmless.
        #expect(try await store.release(handleId: h2.id!) == .nothingToDo)
    }

    @Test func cancelEndsWaitersReturnsPreparedVMsAndKeepsLockedOnes() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (batch, vms) = try await makeGrantedBatch(store, size: 2)
        let (vm1, vm2) = (vms[0], vms[1])
        _ = try await store.configured(vm: vm1, homepage: "http://a.test/")
        _ = try await store.configured(vm: vm2, homepage: "http://a.test/")
        let locked = try await store.lock(batchId: batch.id!)
        _ = try await store.lock(batchId: batch.id!) // takes vm2
        let waiting = try await store.lock(batchId: batch.id!)
        #expect(waiting.state == .waiting)

        let reset = try await store.cancelBatch(batchId: batch.id!)
        #expect(reset.isEmpty, "both VMs are locked; they stay with their handles")
        #expect(try await store.handle(waiting.id!)?.state == .cancelled)
        #expect(try await store.vm(locked.vmId!)?.state == .locked)
        let late = try await store.lock(batchId: batch.id!)
        #expect(late.state == .cancelled && late.vmId == nil)
        // Releasing a locked VM of a cancelled batch returns it to the pool.
        _ = try await store.release(handleId: locked.id!)
        #expect(try await store.vm(locked.vmId!)?.batchId == nil)
        #expect(try await store.resetDone(vm: locked.vmId!) == .idle)
    }

    @Test func preparedVMsOfACancelledBatchAreResetBackToThePool() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (batch, vms) = try await makeGrantedBatch(store, size: 2)
        let (vm1, vm2) = (vms[0], vms[1])
        _ = try await store.configured(vm: vm1, homepage: "http://a.test/")
        #expect(try await store.cancelBatch(batchId: batch.id!) == [vm1])
        // vm2 was still preparing: its late ack sends it to a reset instead.
        #expect(try await store.configured(vm: vm2, homepage: "http://a.test/") == .mustReset)
        #expect(try await store.vm(vm2)?.state == .resetting)
        #expect(try await store.cancelBatch(batchId: batch.id!).isEmpty, "cancelling twice changes nothing")
    }

    @Test func failedVMLosesItsHandle() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (batch, vms) = try await makeGrantedBatch(store, size: 1)
        let vm = vms[0]
        _ = try await store.configured(vm: vm, homepage: "http://a.test/")
        let handle = try await store.lock(batchId: batch.id!)
        #expect(try await store.markFailed(vm: vm, reason: "domain crashed"))
        let lost = try #require(try await store.handle(handle.id!))
        #expect(lost.state == .lost && lost.reason?.contains("domain crashed") == true)
        #expect(try await store.vm(vm)?.state == .failed)
        #expect(try await store.markFailed(vm: vm, reason: "again") == false)
    }

    @Test func theDatabaseRefusesOneVMForTwoHandlesAndEditsOfTheEventLog() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let batch = try await store.createBatch(size: 1, homepage: "http://a.test/")
        let vm = try await makeIdleVM(store)
        let h1 = try await store.lock(batchId: batch.id!)
        let h2 = try await store.lock(batchId: batch.id!)
        try await store.pool.write { db in
            try db.execute(sql: "UPDATE handle SET state = 'assigned', vmId = ? WHERE id = ?", arguments: [vm, h1.id])
        }
        await #expect(throws: DatabaseError.self) {
            try await store.pool.write { db in
                try db.execute(sql: "UPDATE handle SET state = 'assigned', vmId = ? WHERE id = ?", arguments: [vm, h2.id])
            }
        }
        await #expect(throws: DatabaseError.self) {
            try await store.pool.write { db in try db.execute(sql: "DELETE FROM event") }
        }
        #expect(try await store.events().count > 0)
    }

    @Test func reopeningKeepsStateInstanceIdAndWAL() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let batch = try await store.createBatch(size: 3, homepage: "http://a.test/")
        try await store.setPoolSize(PoolSize(min: 1, max: 4, lingerMs: 250))
        let reopened = try Store(path: dir + "/appliance.sqlite")
        #expect(reopened.instanceId == store.instanceId)
        // Compare stored rows (SQLite keeps dates to the millisecond).
        #expect(try await reopened.batch(batch.id!) == store.batch(batch.id!))
        #expect(try await reopened.batch(batch.id!)?.homepage == "http://a.test/")
        #expect(try await reopened.poolSize() == PoolSize(min: 1, max: 4, lingerMs: 250))
        let mode = try await reopened.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        let migrations = try await reopened.pool.read { db in try Migrations.migrator.appliedMigrations(db) }
        #expect(migrations == ["v1-pool"])
    }
}
