import Foundation
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// VM faults in a row pause the pool's boots instead of turning into a loop of doomed VMs, and
/// show in `GET /v1/pool` and the event log. The pool runs on libvirt's test driver.
@Suite struct FaultBackoffTests {
    @Test func faultsInARowPauseBootsAndShowInThePool() async throws {
        let harness = try await APIHarness()
        let store = harness.pool.store
        try await store.setPoolSize(PoolSize(min: 1, max: 4, lingerMs: 0))
        // Three VMs in a row fail as a fault every new VM would meet would make them.
        for _ in 0..<3 {
            let vm = try await store.insertPendingVM(domainPrefix: harness.pool.hypervisor.domainPrefix)
            try await store.transition(vm: vm.id!, .domainStarted)
            try await harness.createTestDomain(for: vm)
            try await harness.pool.fail(vm.id!, reason: "configure failed: agent gone")
        }
        let pause = await harness.pool.bootPause()
        #expect(pause.faults == 3)
        let until = try #require(pause.until, "boots are paused")
        #expect(until.timeIntervalSinceNow > 2 && until.timeIntervalSinceNow <= 4, "third fault in a row: 4 s, \(until.timeIntervalSinceNow)")
        #expect(try await store.events().filter { $0.kind == "pool.boots_paused" }.count == 2, "from the second fault on")

        // The pool is below its minimum, yet a pass boots nothing while the pause lasts.
        let pendingBefore = try await store.events().filter { $0.kind == "vm.pending" }.count
        await harness.engine.pass()
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await store.events().filter { $0.kind == "vm.pending" }.count == pendingBefore, "no VM booted during the pause")
        // Once it is over, a pass boots a replacement. On the test driver its domain cannot
        // start: a fourth fault in a row, which pauses boots for longer, and GET /v1/pool shows
        // it (checked last: the harness's client closes the appliance when done).
        try await Task.sleep(for: .seconds(until.timeIntervalSinceNow + 0.2))
        var after = await harness.pool.bootPause()
        for _ in 0..<50 where after.faults < 4 {
            await harness.engine.pass()
            try await Task.sleep(for: .milliseconds(200))
            after = await harness.pool.bootPause()
        }
        #expect(after.faults == 4 && after.bootFailures == 1, "a replacement was booted after the pause: \(after)")
        #expect((after.until?.timeIntervalSinceNow ?? 0) > 5, "the fourth fault pauses for 8 s: \(after)")
        try await harness.test { client in
            let answer = try await AuthTests.send(client, .get, "/v1/pool")
            #expect(answer.object["faults"] as? Int == 4, "\(answer)")
            #expect(answer.object["bootsPausedUntil"] is String, "\(answer)")
        }
    }
}
