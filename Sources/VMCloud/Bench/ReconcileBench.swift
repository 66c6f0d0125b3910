import Foundation
import Libvirt
import Logging
import VMCloudCore

/// The VM engine at scale on libvirt's test driver (real libvirt code, no guests):
/// N generic VMs started, steady passes timed, domains killed behind its back and replaced.
/// The baseline is what a poller without one listing would do: a libvirt state call per VM.
package struct ReconcileBench {
    package var vms = 1000
    package var passes = 30
    package var kill = 100

    package init(vms: Int, passes: Int, kill: Int) {
        (self.vms, self.passes, self.kill) = (vms, passes, kill)
    }

    package struct Failure: Error, CustomStringConvertible {
        package let description: String
        init(_ description: String) { self.description = description }
    }

    package func run() async throws -> ReconcileBenchResult {
        let dir = NSTemporaryDirectory() + "vmcloud-bench-reconcile-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // The appliance's own wiring over the test driver; its services do not run: the bench
        // calls the engine's passes itself.
        var config = ServeConfig.onTestDriver(directory: dir)
        config.reconcileInterval = 3600
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let parts = try await ApplianceParts.wire(config, logger: logger)
        let (store, libvirt, engine) = (parts.store, parts.libvirt, parts.engine)
        let images = ImageStore(root: parts.state.imagesDir)
        _ = try await runTool(Hypervisor.qemuImg, ["create", "-q", "-f", "qcow2", images.path("base.qcow2"), "16M"])
        let spec = MachineSpec.plain(hda: .stored("base.qcow2"))

        progress("creating \(vms) generic VMs in the store")
        var machines: [MachineRecord] = []
        for i in 0..<vms { machines.append(try await store.createMachine(name: "bench\(i)", spec: spec)) }

        progress("starting them (a qcow2 overlay and a domain each)")
        let coldStart = try await untilAllRunning(store, engine, count: vms)

        progress("timing \(passes) passes with nothing to do")
        var steady: [Double] = []
        for _ in 0..<passes {
            let started = Date()
            let actions = await engine.pass()
            steady.append(Date().timeIntervalSince(started))
            guard actions == 0 else { throw Failure("a steady pass started \(actions) actions") }
        }

        progress("timing the baseline: the same store read, then one virDomainGetState per VM")
        var naive: [Double] = []
        var listOnly: [Double] = []
        for _ in 0..<max(3, passes / 5) {
            var started = Date()
            let rows = try await store.machineRows()
            var mismatches = 0
            for row in rows where try await libvirt.domainState(name: row.domainName) != .running { mismatches += 1 }
            naive.append(Date().timeIntervalSince(started))
            guard mismatches == 0 else { throw Failure("baseline saw \(mismatches) VMs not running") }
            started = Date()
            _ = try await libvirt.listDomains()
            listOnly.append(Date().timeIntervalSince(started))
        }

        let victims = Array(machines.shuffled().prefix(kill))
        progress("destroying \(victims.count) domains behind the engine's back")
        for machine in victims { _ = try await libvirt.destroyDomainReleasingLeases(name: machine.domainName) }
        let detectStart = Date()
        let launched = await engine.pass()
        let detect = Date().timeIntervalSince(detectStart)
        let replaced = try await untilAllRunning(store, engine, count: vms)
        guard launched == victims.count else { throw Failure("the pass after the kills started \(launched) actions, not \(victims.count)") }

        for machine in machines { _ = try? await libvirt.destroyDomainReleasingLeases(name: machine.domainName) }
        await libvirt.close()

        return ReconcileBenchResult(
            vms: vms, passes: passes, killed: victims.count, coldStartSeconds: coldStart,
            steadyPassMedianMs: Self.ms(median(steady)), steadyPassP99Ms: Self.ms(percentile(steady, 0.99)),
            perVMMicroseconds: median(steady) / Double(vms) * 1e6,
            baselinePassMedianMs: Self.ms(median(naive)), listDomainsMedianMs: Self.ms(median(listOnly)),
            ratioToBaseline: median(steady) / median(naive),
            detectPassMs: Self.ms(detect), replaceSeconds: replaced,
            date: ISO8601DateFormatter().string(from: Date()), host: Self.hostDescription())
    }

    /// Passes until every machine runs; returns the seconds it took.
    private func untilAllRunning(_ store: Store, _ engine: VMEngine, count: Int) async throws -> Double {
        let started = Date()
        while true {
            await engine.pass()
            let running = try await store.machines().filter { $0.status == .running }.count
            if running == count { return Date().timeIntervalSince(started) }
            if Date().timeIntervalSince(started) > 600 { throw Failure("only \(running) of \(count) running after 600 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func progress(_ text: String) {
        FileHandle.standardError.write(Data("[bench] \(text)\n".utf8))
    }

    static func ms(_ seconds: Double) -> Double { (seconds * 100_000).rounded() / 100 }

    static func hostDescription() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "?"
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    }
}

package struct ReconcileBenchResult: Encodable {
    let vms: Int
    let passes: Int
    let killed: Int
    let coldStartSeconds: Double
    let steadyPassMedianMs: Double
    let steadyPassP99Ms: Double
    let perVMMicroseconds: Double
    let baselinePassMedianMs: Double
    let listDomainsMedianMs: Double
    let ratioToBaseline: Double
    let detectPassMs: Double
    let replaceSeconds: Double
    let date: String
    let host: String

    package var markdown: String {
        """
        # VM engine at \(vms) generic VMs (libvirt test:///default)

        \(date), \(host). `appliance bench reconcile --vms \(vms) --passes \(passes) --kill \(killed)`.

        | figure | value |
        |---|---|
        | steady pass (nothing to do), median | \(steadyPassMedianMs) ms |
        | steady pass, p99 | \(steadyPassP99Ms) ms |
        | per VM | \(String(format: "%.1f", perVMMicroseconds)) µs |
        | baseline: the same store read + one virDomainGetState per VM, median | \(baselinePassMedianMs) ms |
        | ratio pass / baseline | \(String(format: "%.2f", ratioToBaseline)) |
        | of which libvirt's domain listing alone, median | \(listDomainsMedianMs) ms |
        | pass after \(killed) domains vanished (detects them, starts \(killed) actions) | \(detectPassMs) ms |
        | until all \(vms) run again | \(String(format: "%.2f", replaceSeconds)) s |
        | cold start of \(vms) VMs (overlay + domain each) | \(String(format: "%.2f", coldStartSeconds)) s |

        """
    }
}

package func median(_ values: [Double]) -> Double { percentile(values, 0.5) }

package func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}
