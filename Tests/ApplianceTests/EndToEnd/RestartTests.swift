import Foundation
import Testing

/// kill -9 of the appliance at sensitive moments, then a restart on the same state: the same
/// VMs, batches and handles, no duplicate domains, orphans destroyed, no VM with two handles.
@Suite(.serialized) struct RestartTests {
    @Test func killNineDuringBootAndDuringResetThenRestart() async throws {
        let parent = try makeTemporaryDirectory("restart-gates")
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let gates = try TestGates(in: parent, holding: [])
        try await withAppliance("restart", environment: gates.environment) { run in try await scenario(run, gates) }
    }

    func scenario(_ run: ApplianceRun, _ gates: TestGates) async throws {
        let (appliance, api, prefix, live) = (run.appliance, run.api, run.prefix, run.live)
        func checkInvariants() async throws {
            let vms = try await live()
            let names = vms.compactMap { $0["domain"] as? String }
            #expect(Set(names).count == names.count, "no two VMs share a domain")
            try await eventually("virsh matches the store", timeout: 30) {
                let ours = Set(try await live().compactMap { $0["domain"] as? String })
                return try virshDomainNames(prefix: prefix) == ours
            }
            let handles = try await api.json("/v1/handles") as! [[String: Any]]
            let held = handles.filter { $0["state"] as? String == "assigned" }.compactMap { $0["vmid"] as? Int }
            #expect(Set(held).count == held.count, "no VM assigned to two handles: \(held)")
        }

        // 1. Kill while the first VMs are being created.
        #expect(try await api.postOK("/set-pool-size/2/3/60000") == "")
        var booting: Set<Int> = []
        try await eventually("a VM being created", timeout: 30) {
            booting = Set(try await live().filter { ["pending", "booting"].contains($0["state"] as? String ?? "") }.compactMap { $0["id"] as? Int })
            return !booting.isEmpty
        }
        appliance.kill9()
        try await appliance.start()
        try await eventually("two idle VMs after the restart", timeout: 120) {
            try await live().filter { $0["state"] as? String == "idle" }.count == 2
        }
        #expect(try await live().count == 2)
        let idle = Set(try await live().compactMap { $0["id"] as? Int })
        #expect(booting.isSubset(of: idle), "the VMs killed while booting (\(booting)) were adopted, not replaced: \(idle)")
        try await checkInvariants()

        // 2. Kill right after a release, while the VM is being reset for the waiting handle.
        let batch = try await api.postOK("/prepare-batch/2/http%3A%2F%2Fexample.test%2F")
        let h1 = try await api.postOK("/lock/\(batch)")
        let h2 = try await api.postOK("/lock/\(batch)")
        try await eventually("two locks assigned", timeout: 60) {
            for h in [h1, h2] where try await api.handleStatus(h)["assigned"] as? Bool != true { return false }
            return true
        }
        let vmOfH1 = try await api.handleStatus(h1)["vmid"] as! Int
        let vmOfH2 = try await api.handleStatus(h2)["vmid"] as! Int
        let h3 = try await api.postOK("/lock/\(batch)")
        gates.hold("reset")
        _ = try await api.postOK("/release/\(h1)")
        try await gates.reached("reset", timeout: 30)
        #expect((try await api.json("/v1/vms/\(vmOfH1)") as? [String: Any])?["state"] as? String == "resetting", "killed during the reset")
        appliance.kill9()
        gates.stopHolding("reset")

        // 3. While it is down, a domain of ours that the store does not know appears.
        let orphan = prefix + "vm999999"
        try createOrphanDomain(name: orphan, instance: run.instance, dir: run.directory)
        #expect(try virshDomainNames(prefix: prefix).contains(orphan))

        try await appliance.start()
        try await eventually("the orphan is destroyed", timeout: 30) { !(try virshDomainNames(prefix: prefix).contains(orphan)) }
        let events = try await api.json("/v1/events?limit=500") as! [[String: Any]]
        #expect(events.contains { $0["kind"] as? String == "vm.orphan" && ($0["message"] as? String)?.contains(orphan) == true })

        // The interrupted reset resumes and the waiting handle gets h1's VM; h2 keeps its VM.
        try await eventually("h3 assigned after the restart", timeout: 60) {
            try await api.handleStatus(h3)["assigned"] as? Bool == true
        }
        #expect(try await api.handleStatus(h3)["vmid"] as? Int == vmOfH1)
        #expect(try await api.handleStatus(h2)["vmid"] as? Int == vmOfH2)
        #expect(try await api.handleStatus(h1)["assigned"] as? Bool == false)
        #expect(try await live().count == 2, "no VM lost or added across the restarts")
        try await checkInvariants()

        _ = try await api.postOK("/set-pool-size/0/0/0")
        for h in [h2, h3] { _ = try await api.postOK("/release/\(h)") }
        try await eventually("no VMs", timeout: 60) { try await live().isEmpty && (try virshDomainNames(prefix: prefix)).isEmpty }
    }

    /// A transient domain carrying this appliance's metadata: the test kernel with no root file
    /// system, which panics and then sits there running.
    func createOrphanDomain(name: String, instance: String, dir: String) throws {
        let xml = """
            <domain type='qemu'>
              <name>\(name)</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
              <metadata><vmcloud:vm xmlns:vmcloud='urn:vmcloud:appliance:1' appliance='\(instance)' id='999999'/></metadata>
              <os><type arch='x86_64' machine='pc'>hvm</type><kernel>\(ApplianceProcess.testImage)/vmlinuz</kernel><cmdline>console=ttyS0</cmdline></os>
              <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
              <devices><memballoon model='none'/></devices>
            </domain>
            """
        let path = dir + "/orphan.xml"
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/virsh")
        process.arguments = ["-c", "qemu:///system", "create", path]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ApplianceProcess.Failure("virsh create of the orphan failed") }
    }
}
