import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// libvirtd restarts under a running appliance: it reconnects, re-reads the truth, loses no VM
/// and keeps serving. Restarts the host's libvirtd, so `make test` runs it alone, last
/// (VMCLOUD_TEST_RESTART_LIBVIRTD=1, like the Libvirt client's own restart test).
@Suite(.serialized) struct LibvirtdRestartTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["VMCLOUD_TEST_RESTART_LIBVIRTD"] == "1",
                   "restarts the host's libvirtd; set VMCLOUD_TEST_RESTART_LIBVIRTD=1 to run"))
    func reconnectsAfterLibvirtdRestartUnderARunningAppliance() async throws {
        try await withAppliance("libvirtd") { run in
            let api = run.api
            _ = try await api.postOK("/set-pool-size/1/1/600000")
            try await eventually("an idle VM", timeout: 120) { try await run.live().first?["state"] as? String == "idle" }
            let before = try await run.live().compactMap { $0["domain"] as? String }

            // A generic VM too, so that both reconcilers live through the restart.
            _ = try MachineLifecycleTests.stockImageStore(run)
            _ = try await api.object("POST", "/v1/vms", MachineLifecycleTests.spec("survivor"), status: 201)
            try await MachineLifecycleTests.waitStatus(api, "survivor", "running")
            let survivor = try #require(try await MachineLifecycleTests.status(api, "survivor")["domain"] as? String)

            // libvirtd killed: the API keeps answering; what needs libvirt fails clearly.
            try signalLibvirtd(SIGKILL)
            #expect(try await api.get("/v1/pool").0 == 200)
            #expect(try await run.live().compactMap { $0["domain"] as? String } == before)
            let vmId = try #require(try await run.live().first?["id"] as? Int)
            let (down, answer) = try await api.send("GET", "/v1/vms/\(vmId)/screenshot.png")
            #expect(down == 503 && (answer as? [String: Any])?["error"] as? String == "libvirt_unavailable", "\(down) \(answer ?? "")")
            // A VM asked for while libvirtd is down is stored and started once it is back.
            _ = try await api.object("POST", "/v1/vms", MachineLifecycleTests.spec("latecomer", ["run_agent": false]), status: 201)
            try startLibvirtd()
            try await eventually("the appliance reconnected", timeout: 60) {
                (try await api.json("/v1/events?limit=50") as! [[String: Any]]).contains { $0["kind"] as? String == "libvirt.reconnected" }
            }
            #expect(try await run.live().compactMap { $0["domain"] as? String } == before, "no VM lost or replaced")
            try await MachineLifecycleTests.waitStatus(api, "latecomer", "running", timeout: 60)
            #expect(try await MachineLifecycleTests.status(api, "survivor")["status"] as? String == "running")
            let machines = try virshDomainNames(prefix: run.prefix + "m")
            #expect(machines.count == 2 && machines.contains(survivor), "\(machines)")
            #expect(try virshDomainNames(prefix: run.prefix + "vm") == Set(before))

            // It keeps serving: a batch is prepared and locked on the same VM.
            let batch = try await api.postOK("/prepare-batch/1/http%3A%2F%2Fexample.test%2F")
            let handle = try await api.postOK("/lock/\(batch)")
            try await eventually("lock assigned", timeout: 60) { try await api.handleStatus(handle)["assigned"] as? Bool == true }
            _ = try await api.postOK("/set-pool-size/0/0/0")
            _ = try await api.postOK("/release/\(handle)")
            try await eventually("no VMs", timeout: 60) { try await run.live().isEmpty }
        }
    }

    /// libvirtd dies while a restarted appliance starts its resync (issue 28: the fault run once
    /// saw the pool's service throw there, which ended the service group and the process). The
    /// resync is retried, the API answers meanwhile, and once libvirtd is back the pool adopts its
    /// running VM instead of replacing it.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["VMCLOUD_TEST_RESTART_LIBVIRTD"] == "1",
                   "restarts the host's libvirtd; set VMCLOUD_TEST_RESTART_LIBVIRTD=1 to run"))
    func keepsServingWhenLibvirtdDiesAtTheStartupResync() async throws {
        defer { if (try? runTool("/usr/bin/pgrep", ["-x", "libvirtd"])) == nil { try? startLibvirtd() } }
        try await withAppliance("resync-fault") { run in
            let api = run.api
            _ = try await api.postOK("/set-pool-size/1/1/600000")
            try await eventually("an idle VM", timeout: 120) { try await run.live().first?["state"] as? String == "idle" }
            let before = try await run.live().compactMap { $0["domain"] as? String }

            // Restarted (kill -9 leaves its VM running) and held just before the start-up resync.
            let gates = try TestGates(in: run.directory, holding: ["resync"])
            run.appliance.kill9()
            run.appliance.environment = gates.environment
            try await run.appliance.start()
            try await gates.reached("resync")
            // libvirtd dies there and stays down longer than the client waits for a reconnect
            // (10 s), so the resync itself fails.
            try signalLibvirtd(SIGKILL)
            gates.open("resync")
            try await eventually("the failed resync recorded", timeout: 60) {
                (try await api.json("/v1/events?limit=50") as! [[String: Any]]).contains { $0["kind"] as? String == "pool.resync_failed" }
            }
            #expect(run.appliance.isRunning, "the appliance exited when its resync failed")
            #expect(try await api.get("/v1/pool").0 == 200)

            try startLibvirtd()
            // Adopted, not replaced: the same domain, and the pool works it (a batch is prepared
            // and locked on it, which needs the agent session that the resync attaches).
            let batch = try await api.postOK("/prepare-batch/1/http%3A%2F%2Fexample.test%2F")
            let handle = try await api.postOK("/lock/\(batch)")
            try await eventually("lock assigned after libvirtd came back", timeout: 120) {
                try await api.handleStatus(handle)["assigned"] as? Bool == true
            }
            #expect(run.appliance.isRunning)
            #expect(try await run.live().compactMap { $0["domain"] as? String } == before, "no VM lost or replaced")
            #expect(try virshDomainNames(prefix: run.prefix + "vm") == Set(before))
            _ = try await api.postOK("/set-pool-size/0/0/0")
            _ = try await api.postOK("/release/\(handle)")
            try await eventually("no VMs", timeout: 60) { try await run.live().isEmpty }
        }
    }

    /// Sends libvirtd a signal and waits until it is gone.
    func signalLibvirtd(_ signal: Int32) throws {
        _ = try? runTool("/usr/bin/pkill", ["-\(signal)", "-x", "libvirtd"])
        for _ in 0..<100 {
            if (try? runTool("/usr/bin/pgrep", ["-x", "libvirtd"])) == nil { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ApplianceProcess.Failure("libvirtd did not exit")
    }

    /// Starts libvirtd with an empty signal mask (a child of this test process would otherwise
    /// inherit blocked signals and ignore a later SIGTERM).
    func startLibvirtd() throws {
        let script = """
            import signal, subprocess
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            subprocess.run(["libvirtd", "-d"], check=True)
            """
        _ = try runTool("/usr/bin/python3", ["-c", script])
    }
}
