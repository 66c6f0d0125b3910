import Foundation
import Testing

/// The vmcloud scenario on real QEMU guests (TCG) through the real binary and its HTTP API.
/// Serialized: each test boots several guests on a 2-core machine.
@Suite(.serialized) struct PoolScenarioTests {
    static let homepage = "http://example.test/start?a=1&b=two"
    static var encodedHomepage: String { homepage.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }

    @Test func theVmcloudScenario() async throws {
        try await withAppliance("e2e") { run in try await scenario(run) }
    }

    func scenario(_ run: ApplianceRun) async throws {
        let (api, prefix, live) = (run.api, run.prefix, run.live)

        // set-pool-size 2/3/5000: two VMs boot and their agents say hello.
        #expect(try await api.postOK("/set-pool-size/2/3/5000") == "")
        try await eventually("two idle VMs", timeout: 120) {
            try await live().filter { $0["state"] as? String == "idle" }.count == 2
        }
        #expect(try await live().count == 2, "min is 2 and nothing asks for more")
        // Each VM's address is the one dnsmasq leased to its own MAC on the NAT network.
        let ips = try NATNetwork.expectLeasedIPs(try await live())
        var macs: [Int: String] = [:]
        for vm in try await live() { macs[vm["id"] as! Int] = try NATNetwork.mac(domain: vm["domain"] as! String) }

        // prepare-batch 2: both VMs are configured by their agents.
        let batch = try await api.postOK("/prepare-batch/2/\(Self.encodedHomepage)")
        #expect(Int(batch) != nil)
        let h1 = try await api.postOK("/lock/\(batch)")
        let h2 = try await api.postOK("/lock/\(batch)")
        var assigned: [String: Int] = [:]
        try await eventually("two locks assigned", timeout: 60) {
            for h in [h1, h2] where assigned[h] == nil {
                let status = try await api.handleStatus(h)
                if status["assigned"] as? Bool == true { assigned[h] = status["vmid"] as? Int }
            }
            return assigned.count == 2
        }
        #expect(Set(assigned.values).count == 2, "two distinct VMs")
        for (h, vmid) in assigned {
            let status = try await api.handleStatus(h)
            let vm = status["vm"] as! [String: Any]
            #expect(vm["homepage"] as? String == Self.homepage)
            #expect(vm["state"] as? String == "locked")
            #expect(vm["batch"] as? Int == Int(batch))
            #expect(vm["ip"] as? String == ips[vmid], "handle-status shows the VM's leased address")
            // The guest's own view, asked live through its agent.
            let agent = try await api.json("/v1/vms/\(vmid)/agent") as! [String: Any]
            #expect(agent["homepage"] as? String == Self.homepage)
        }

        // A third lock waits: the batch has 0 VMs remaining.
        let h3 = try await api.postOK("/lock/\(batch)")
        try await Task.sleep(for: .seconds(2))
        #expect(try await api.handleStatus(h3)["assigned"] as? Bool == false)
        #expect(try await live().count == 2, "a waiting handle boots nothing: the batch already has its size")

        // Releasing h1 resets its VM, which then serves h3.
        let vmOfH1 = assigned[h1]!
        #expect(try await api.postOK("/release/\(h1)") == "")
        try await eventually("h3 assigned after the reset", timeout: 60) {
            try await api.handleStatus(h3)["assigned"] as? Bool == true
        }
        #expect(try await api.handleStatus(h3)["vmid"] as? Int == vmOfH1)
        #expect(try await api.handleStatus(h1)["assigned"] as? Bool == false)
        let kinds = (try await api.json("/v1/events?vm=\(vmOfH1)&limit=50") as! [[String: Any]])
            .reversed().compactMap { $0["kind"] as? String }.filter { $0.hasPrefix("vm.") }
        let tail = Array(kinds.drop { $0 != "vm.resetting" })
        #expect(tail.prefix(4) == ["vm.resetting", "vm.preparing", "vm.prepared", "vm.locked"], "\(kinds)")

        // cancel-batch: a new lock is never assigned.
        #expect(try await api.postOK("/cancel-batch/\(batch)") == "")
        let h4 = try await api.postOK("/lock/\(batch)")
        try await Task.sleep(for: .seconds(2))
        #expect(try await api.handleStatus(h4)["assigned"] as? Bool == false)
        #expect((try await api.json("/v1/handles/\(h4)") as! [String: Any])["state"] as? String == "cancelled")

        // Release all: the VMs return to the pool with a clean slate.
        for h in [h2, h3, h4] { #expect(try await api.postOK("/release/\(h)") == "") }
        try await eventually("both VMs idle in no batch", timeout: 60) {
            let vms = try await live()
            return vms.count == 2 && vms.allSatisfy { $0["state"] as? String == "idle" && $0["batch"] == nil }
        }
        for vm in try await live() {
            let agent = try await api.json("/v1/vms/\(vm["id"] as! Int)/agent") as! [String: Any]
            #expect(agent["homepage"] == nil, "the guest kept no homepage after reset")
        }

        // With min 1, the VM above min is destroyed once it has been idle for linger (15 s, far
        // longer than the VMs have been idle now): not sooner, and not much later. Linger counts
        // from when the VM became idle (its last vm.idle event; events have 1 s resolution).
        let before = Set(try await live().compactMap { $0["id"] as? Int })
        #expect(try await api.postOK("/set-pool-size/1/3/15000") == "")
        try await eventually("one VM left", timeout: 45) { try await live().count == 1 }
        let gone = try #require(before.subtracting(try await live().compactMap { $0["id"] as? Int }).first)
        let events = (try await api.json("/v1/events?vm=\(gone)&limit=100") as! [[String: Any]]).reversed()
        func at(_ kind: String) -> Date? {
            events.last { $0["kind"] as? String == kind }.flatMap { ($0["at"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) } }
        }
        let idledAt = try #require(at("vm.idle")), destroyingAt = try #require(at("vm.destroying"))
        let lingered = destroyingAt.timeIntervalSince(idledAt)
        #expect(lingered >= 14 && lingered <= 25, "destroyed \(lingered) s after it became idle, linger 15 s")
        // Its NAT lease went back to dnsmasq with it (a churning pool would otherwise use up the
        // network's addresses within the lease hour); the other VM keeps its own.
        try await eventually("the destroyed VM's lease is released", timeout: 10) {
            try NATNetwork.leasedIP(mac: macs[gone]!) == nil
        }
        let kept = try #require(try await live().first)
        #expect(try NATNetwork.leasedIP(mac: macs[kept["id"] as! Int]!) == kept["ip"] as? String)

        // The appliance's view matches libvirt's.
        try await eventually("virsh agrees", timeout: 20) {
            let ours = Set(try await live().compactMap { $0["domain"] as? String })
            return try virshDomainNames(prefix: prefix) == ours
        }

        // Scale to zero: every domain goes.
        #expect(try await api.postOK("/set-pool-size/0/0/0") == "")
        try await eventually("no VMs", timeout: 30) { try await live().isEmpty && (try virshDomainNames(prefix: prefix)).isEmpty }
    }

    /// QEMU's user networking, for hosts without libvirt's NAT network: the guest has QEMU's
    /// fixed address and the lock flow works.
    @Test func userModeNetworkingStillWorks() async throws {
        try await withAppliance("user-net", network: .user) { run in
            let api = run.api
            _ = try await api.postOK("/set-pool-size/1/1/0")
            try await eventually("an idle VM", timeout: 120) { try await run.live().first?["state"] as? String == "idle" }
            let vm = try #require(try await run.live().first)
            #expect(vm["ip"] as? String == "10.0.2.15", "QEMU's user-mode address: \(vm)")
            #expect((try? NATNetwork.mac(domain: vm["domain"] as! String)) == nil, "no interface on the NAT network")
            let batch = try await api.postOK("/prepare-batch/1/\(Self.encodedHomepage)")
            let handle = try await api.postOK("/lock/\(batch)")
            try await eventually("lock assigned", timeout: 60) { try await api.handleStatus(handle)["assigned"] as? Bool == true }
            #expect(try await api.postOK("/release/\(handle)") == "")
        }
    }

    /// A guest's QEMU killed under a locked handle: libvirt's lifecycle event marks the VM failed
    /// and the handle lost within seconds, and the pool boots a replacement. The pid-file poll
    /// is off, and the reason is the event's, so a broken event subscription fails this test.
    @Test func aCrashedGuestIsNoticedThroughLibvirtEvents() async throws {
        try await withAppliance("crash", environment: ["VMCLOUD_TEST_NO_QEMU_PID_POLL": "1"]) { run in
            let api = run.api
            _ = try await api.postOK("/set-pool-size/1/2/60000")
            let batch = try await api.postOK("/prepare-batch/1/http%3A%2F%2Fexample.test%2F")
            let handle = try await api.postOK("/lock/\(batch)")
            try await eventually("lock assigned", timeout: 120) { try await api.handleStatus(handle)["assigned"] as? Bool == true }
            let vm = try await api.handleStatus(handle)["vm"] as! [String: Any]
            let domain = vm["domain"] as! String

            let pkill = Process()
            pkill.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            pkill.arguments = ["-KILL", "-f", "guest=\(domain),"]
            try pkill.run()
            pkill.waitUntilExit()
            #expect(pkill.terminationStatus == 0, "a QEMU process for \(domain) was killed")
            let killed = Date()

            try await eventually("handle lost", timeout: 20) {
                (try await api.json("/v1/handles/\(handle)") as! [String: Any])["state"] as? String == "lost"
            }
            let noticed = Date().timeIntervalSince(killed)
            // libvirt's event for a killed QEMU takes about 1-2 s here; without it the handle is
            // never lost (the pid-file poll is off).
            #expect(noticed < 10, "noticed through the lifecycle event within seconds: \(noticed) s")
            let events = try await api.json("/v1/events?vm=\(vm["id"] as! Int)&limit=50") as! [[String: Any]]
            #expect(events.contains { $0["kind"] as? String == "vm.failed" }, "the crash is recorded as an event")
            let lost = try await api.json("/v1/handles/\(handle)") as! [String: Any]
            #expect((lost["reason"] as? String)?.contains("(libvirt detail") == true, "the event's reason, not the poll's: \(lost)")
            #expect(try await api.handleStatus(handle)["assigned"] as? Bool == false)
            try await eventually("a replacement VM is idle", timeout: 120) {
                try await api.vms().contains { $0["state"] as? String == "idle" && $0["id"] as? Int != vm["id"] as? Int }
            }
            try await eventually("the pool is back to its size", timeout: 60) { try await run.live().count == 1 }
            let old = try await api.json("/v1/vms/\(vm["id"] as! Int)") as! [String: Any]
            #expect(["failed", "destroying", "destroyed"].contains(old["state"] as? String ?? ""))
        }
    }
}
