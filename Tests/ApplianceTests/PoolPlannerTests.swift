import Foundation
import Testing
@testable import VMCloud
@testable import VMCloudCore

@Suite struct PoolPlannerTests {
    let now = Date()

    func vm(_ id: Int64, _ state: VMState, batch: Int64? = nil, idleFor: TimeInterval = 0, inStateFor: TimeInterval = 0) -> VMRecord {
        VMRecord(id: id, domainName: "d\(id)", state: state, batchId: batch, handleId: nil, ip: nil, agentVersion: nil,
                 homepage: nil, createdAt: now, stateSince: now.addingTimeInterval(-inStateFor),
                 idleSince: state == .idle && batch == nil ? now.addingTimeInterval(-idleFor) : nil, lastError: nil)
    }

    func batch(_ id: Int64, size: Int, granted: Int) -> BatchRecord {
        BatchRecord(id: id, size: size, homepage: "http://x/", state: .open, granted: granted, createdAt: now)
    }

    func plan(_ size: PoolSize, _ vms: [VMRecord], _ batches: [BatchRecord] = []) -> PoolPlan {
        PoolPlanner.plan(size: size, vms: vms, openBatches: batches, now: now, bootTimeout: 60)
    }

    @Test func bootsUpToMin() {
        #expect(plan(PoolSize(min: 2, max: 3, lingerMs: 0), []).boot == 2)
        #expect(plan(PoolSize(min: 2, max: 3, lingerMs: 0), [vm(1, .booting)]).boot == 1)
        #expect(plan(PoolSize(min: 2, max: 3, lingerMs: 0), [vm(1, .idle), vm(2, .locked)]).boot == 0)
    }

    @Test func batchDemandBootsButNeverAboveMax() {
        // Two idle VMs, a batch still owed 5: boot up to max (3), not 5.
        let p = plan(PoolSize(min: 2, max: 3, lingerMs: 5000), [vm(1, .idle), vm(2, .idle)], [batch(1, size: 5, granted: 0)])
        #expect(p.boot == 1)
        // Booting VMs already count towards what a batch is owed.
        let q = plan(PoolSize(min: 0, max: 10, lingerMs: 0), [vm(1, .booting)], [batch(1, size: 3, granted: 1)])
        #expect(q.boot == 1)
    }

    @Test func failedAndDestroyedVMsDoNotCount() {
        let p = plan(PoolSize(min: 2, max: 3, lingerMs: 0), [vm(1, .failed), vm(2, .destroying), vm(3, .destroyed)])
        #expect(p.boot == 2)
    }

    @Test func lingerDestroysIdlePoolVMsAboveMinOnly() {
        let vms = [vm(1, .idle, idleFor: 10), vm(2, .idle, idleFor: 1), vm(3, .idle, idleFor: 20), vm(4, .locked, batch: 1)]
        // linger 5 s, min 2: four live; VMs 3 and 1 idled longer than 5 s; only two may go (4 - 2).
        let p = plan(PoolSize(min: 2, max: 10, lingerMs: 5000), vms)
        #expect(p.destroy == [3, 1])
        // min 3: only the longest-idle one goes.
        #expect(plan(PoolSize(min: 3, max: 10, lingerMs: 5000), vms).destroy == [3])
        // Nothing has lingered past 30 s.
        #expect(plan(PoolSize(min: 0, max: 10, lingerMs: 30000), vms).destroy.isEmpty)
    }

    @Test func aboveMaxShedsFreeVMsAtOnce() {
        let vms = [vm(1, .idle), vm(2, .idle), vm(3, .prepared, batch: 1), vm(4, .locked, batch: 1)]
        let p = plan(PoolSize(min: 0, max: 2, lingerMs: 1_000_000), vms)
        #expect(Set(p.destroy) == [1, 2])
        #expect(p.boot == 0)
        // VMs in a batch are never shed, even above max.
        #expect(plan(PoolSize(min: 0, max: 1, lingerMs: 1_000_000), vms).destroy.count == 2)
    }

    @Test func bootTimeoutFailsStuckVMs() {
        let p = plan(PoolSize(min: 1, max: 1, lingerMs: 0), [vm(1, .booting, inStateFor: 61), vm(2, .booting, inStateFor: 5)])
        #expect(p.bootTimedOut == [1])
    }

    @Test func aHugePoolBootsAFewAtATime() {
        let huge = PoolSize(min: 5000, max: 10000, lingerMs: 0)
        #expect(PoolPlanner.plan(size: huge, vms: [], openBatches: [], now: now, bootTimeout: 60, maxConcurrentBoots: 8).boot == 8)
        let starting = [vm(1, .pending), vm(2, .booting), vm(3, .idle)]
        #expect(PoolPlanner.plan(size: huge, vms: starting, openBatches: [], now: now, bootTimeout: 60, maxConcurrentBoots: 8).boot == 6)
    }

    /// The plan says when time alone will change it, so the engine looks again then and not on
    /// a fixed tick: the next idle VM above min to pass its linger, or the next boot to time out.
    @Test func looksAgainWhenALingerOrABootTimeoutEnds() {
        let lingering = plan(PoolSize(min: 1, max: 10, lingerMs: 5000), [vm(1, .idle, idleFor: 2), vm(2, .idle, idleFor: 4)])
        #expect(lingering.destroy.isEmpty)
        #expect(lingering.lookAgainAt.map { abs($0.timeIntervalSince(now.addingTimeInterval(1))) < 0.001 } == true,
                "VM 2 lingers 1 s more: \(String(describing: lingering.lookAgainAt))")
        // At min, nothing lingers out: no deadline.
        #expect(plan(PoolSize(min: 2, max: 10, lingerMs: 5000), [vm(1, .idle, idleFor: 2), vm(2, .idle, idleFor: 4)]).lookAgainAt == nil)
        // A boot 5 s into a 60 s timeout: look again in 55 s; the one already timed out does not count.
        let booting = plan(PoolSize(min: 2, max: 2, lingerMs: 0), [vm(1, .booting, inStateFor: 61), vm(2, .booting, inStateFor: 5)])
        #expect(booting.lookAgainAt.map { abs($0.timeIntervalSince(now.addingTimeInterval(55))) < 0.001 } == true)
    }
}
