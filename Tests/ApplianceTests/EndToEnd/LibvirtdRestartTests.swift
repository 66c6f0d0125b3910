import Foundation
import Testing

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

            try restartLibvirtd()
            try await eventually("the appliance reconnected", timeout: 60) {
                (try await api.json("/v1/events?limit=50") as! [[String: Any]]).contains { $0["kind"] as? String == "libvirt.reconnected" }
            }
            #expect(try await run.live().compactMap { $0["domain"] as? String } == before, "no VM lost or replaced")
            #expect(try virshDomainNames(prefix: run.prefix) == Set(before))

            // It keeps serving: a batch is prepared and locked on the same VM.
            let batch = try await api.postOK("/prepare-batch/1/http%3A%2F%2Fexample.test%2F")
            let handle = try await api.postOK("/lock/\(batch)")
            try await eventually("lock assigned", timeout: 60) { try await api.handleStatus(handle)["assigned"] as? Bool == true }
            _ = try await api.postOK("/set-pool-size/0/0/0")
            _ = try await api.postOK("/release/\(handle)")
            try await eventually("no VMs", timeout: 60) { try await run.live().isEmpty }
        }
    }

    /// Kills libvirtd and starts it again with an empty signal mask (a child of this test
    /// process would otherwise inherit blocked signals and ignore a later SIGTERM).
    func restartLibvirtd() throws {
        let script = """
            import os, signal, subprocess, time
            subprocess.run(["pkill", "-x", "libvirtd"])
            for _ in range(100):
                if subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True).returncode != 0: break
                time.sleep(0.1)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            subprocess.run(["libvirtd", "-d"], check=True)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ApplianceProcess.Failure("restarting libvirtd failed") }
    }
}
