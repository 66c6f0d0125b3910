import AgentProtocol
import Foundation
import GRDB
import Testing
@testable import VMCloud
@testable import VMCloudCore

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
        #expect(grants.allSatisfy { $0.setup.homepage == "http://example.test/" && $0.setup.cookies.isEmpty })
        #expect(try await store.grantIdleVMs().isEmpty, "a batch is granted at most its size")

        // The second VM answers first: it goes to the oldest waiting handle.
        #expect(try await store.configured(vm: vm2, homepage: "http://example.test/").outcome == .prepared)
        #expect(try await store.handle(h1.id!)?.vmId == vm2)
        #expect(try await store.handle(h2.id!)?.state == .waiting)
        #expect(try await store.configured(vm: vm1, homepage: "http://example.test/").outcome == .prepared)
        #expect(try await store.handle(h2.id!)?.vmId == vm1)
        #expect(try await store.vm(vm1)?.state == .locked)
        // A duplicate ack changes nothing.
        #expect(try await store.configured(vm: vm1, homepage: "http://other/").outcome == .ignored)
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
        #expect(try await store.resetDone(vm: vm) == .configure(Store.BrowserSetup(batch)))
        _ = try await store.configured(vm: vm, homepage: "http://a.test/")
        #expect(try await store.handle(h2.id!)?.state == .assigned)
        #expect(try await store.handle(h2.id!)?.vmId == vm)
        // The reset began a new session: the two users' pages can never mix.
        let s1 = try await store.handle(h1.id!)?.vmSession
        let s2 = try await store.handle(h2.id!)?.vmSession
        #expect(s1 != nil && s2 == s1.map { $0 + 1 })

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
        #expect(try await store.configured(vm: vm2, homepage: "http://a.test/").outcome == .mustReset)
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

    /// A VM that fails while being prepared for a batch (Chromium never started) is replaced:
    /// the batch is owed a VM again and the next idle one is granted to it. It once kept the
    /// failed VM's grant, and the batch's lock waited for good.
    @Test func aBatchGetsAReplacementForAVMThatFailedWhilePreparing() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (batch, vms) = try await makeGrantedBatch(store, size: 1)
        let handle = try await store.lock(batchId: batch.id!)
        #expect(handle.state == .waiting)
        #expect(try await store.markFailed(vm: vms[0], reason: "configure failed"))
        #expect(try await store.batch(batch.id!)?.granted == 0)
        let replacement = try await makeIdleVM(store)
        #expect(try await store.grantIdleVMs().map(\.vmId) == [replacement])
        #expect(try await store.configured(vm: replacement, homepage: batch.homepage).outcome == .prepared)
        #expect(try await store.handle(handle.id!)?.vmId == replacement)
        #expect(try await store.grantIdleVMs().isEmpty, "still at most its size")
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
        #expect(migrations == ["v1-pool", "v2-pages", "v3-access-tokens", "v4-machines", "v5-clients", "v6-jobs", "v7-resources", "v8-browser-outcomes", "v9-leases"])
    }

    @Test func batchCookiesReachTheGrantAndPagesStayWithTheirSession() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cookie = Cookie(name: "sid", value: "abc", domain: "a.test", path: "/", secure: true, httpOnly: true, expires: 2e9)
        let batch = try await store.createBatch(size: 1, homepage: "http://a.test/", cookies: [cookie])
        let vm = try await makeIdleVM(store)
        #expect(try await store.grantIdleVMs().first?.setup.cookies == [cookie])
        #expect(try await store.batch(batch.id!)?.cookies == [cookie], "cookies survive the database")
        _ = try await store.configured(vm: vm, homepage: "http://a.test/")
        let h1 = try await store.lock(batchId: batch.id!)
        func page(_ session: Int64, _ url: String) -> PageRecord {
            PageRecord(id: nil, vmId: vm, vmSession: session, agentPage: 1, url: url, title: "", at: Date(), guestTime: 0,
                       screenshotHash: nil, screenshotBytes: 0, mhtmlHash: nil, mhtmlBytes: 0)
        }
        _ = try await store.insertPage(page(h1.vmSession!, "http://a.test/one"))
        _ = try await store.release(handleId: h1.id!)
        _ = try await store.resetDone(vm: vm)
        _ = try await store.insertPage(page(h1.vmSession! + 1, "http://a.test/two"))
        #expect(try await store.pages(handle: store.handle(h1.id!)!).map(\.url) == ["http://a.test/one"])
    }

    @Test func aVersion1DatabaseIsMigratedWithItsData() async throws {
        let dir = try makeTemporaryDirectory("migrate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/appliance.sqlite"
        do {
            let old = try DatabasePool(path: path)
            try Migrations.migrator.migrate(old, upTo: "v1-pool")
            try await old.write { db in
                try db.execute(sql: "INSERT INTO batch (size, homepage, state, granted, createdAt) VALUES (2, 'http://old/', 'open', 1, ?)", arguments: [Date()])
                try db.execute(sql: "INSERT INTO vm (domainName, state, batchId, createdAt, stateSince) VALUES ('d1', 'prepared', 1, ?, ?)", arguments: [Date(), Date()])
            }
        }
        let store = try Store(path: path)
        #expect(try await store.batch(1)?.homepage == "http://old/")
        #expect(try await store.batch(1)?.cookies == nil)
        #expect(try await store.vm(1)?.session == 0)
        let handle = try await store.lock(batchId: 1)
        #expect(handle.state == .assigned && handle.vmSession == 0)
    }
}
