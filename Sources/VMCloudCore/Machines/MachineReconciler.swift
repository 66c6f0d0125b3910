import AgentProtocol
import Foundation
import Metrics
import Libvirt
import Logging
import NIOCore

/// Drives every generic VM from what it is to what the store says it should be. The pusher is
/// `kick()`, called on every change through the API; the poller is a pass every
/// `pollInterval` and after every libvirt event. A pass reads libvirt's domain list once, asks
/// `MachinePlan` what each VM needs, and starts at most one action task per VM; failed actions
/// are retried with backoff (a start at most three times) and every action and failure is
/// recorded as an event.
package actor MachineReconciler {
    package struct Settings: Sendable {
        package var pollInterval: TimeInterval = 5
        package var startAttempts = 3
        package var saveAttempts = 3
        /// A VM that crashes this many times within `crashWindow` stops being restarted.
        package var crashLimit = 5
        package var crashWindow: TimeInterval = 600

        package init(pollInterval: TimeInterval = 5, startAttempts: Int = 3, saveAttempts: Int = 3, crashLimit: Int = 5, crashWindow: TimeInterval = 600) {
            self.pollInterval = pollInterval
            self.startAttempts = startAttempts
            self.saveAttempts = saveAttempts
            self.crashLimit = crashLimit
            self.crashWindow = crashWindow
        }
    }

    /// The last pass, for the API and the benchmark.
    package struct PassStats: Sendable, Encodable {
        package var passes = 0
        package var lastPassSeconds = 0.0
        package var lastPassMachines = 0
        package var lastPassActions = 0

        package init(passes: Int = 0, lastPassSeconds: Double = 0.0, lastPassMachines: Int = 0, lastPassActions: Int = 0) {
            self.passes = passes
            self.lastPassSeconds = lastPassSeconds
            self.lastPassMachines = lastPassMachines
            self.lastPassActions = lastPassActions
        }
    }

    package nonisolated let store: Store
    package nonisolated let libvirt: LibvirtClient
    package nonisolated let state: StateDirectory
    package nonisolated let disks: MachineDisks
    package nonisolated let network: GuestNetwork
    package let settings: Settings
    package let agents: GuestAgents
    package let logger: Logger

    package var busy: Set<Int64> = []
    /// Failures of the current action per VM and the time before which it is not retried.
    package var failures: [Int64: Backoff] = [:]
    package var crashes: [Int64: [Date]] = [:]
    package let liveness = QemuLiveness()
    package private(set) var stats = PassStats()
    private let kicks: AsyncStream<Void>
    private let kickContinuation: AsyncStream<Void>.Continuation

    package init(store: Store, libvirt: LibvirtClient, state: StateDirectory, disks: MachineDisks, network: GuestNetwork,
         settings: Settings = Settings(), agents: GuestAgents, logger: Logger) {
        self.store = store
        self.libvirt = libvirt
        self.state = state
        self.disks = disks
        self.network = network
        self.settings = settings
        self.agents = agents
        self.logger = logger
        (kicks, kickContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    package nonisolated var domainPrefix: String { store.machineDomainPrefix }
    package nonisolated func files(_ id: Int64) -> MachineFiles { MachineFiles(state: state, id: id) }

    /// The pusher: something changed, run a pass soon.
    package nonisolated func kick() { kickContinuation.yield() }

    /// Runs until cancelled: a pass on every kick, on every poll interval, and on the watch's
    /// news of one of its domains.
    package func run(news: AsyncStream<DomainNews>) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    self.kick()
                    try await Task.sleep(for: .seconds(self.settings.pollInterval))
                }
            }
            group.addTask {
                for await _ in self.kicks { await self.pass() }
            }
            group.addTask {
                for await item in news where await self.concerns(item) { self.kick() }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// News worth a pass: any lifecycle event of a generic VM's domain, libvirt back after a
    /// drop, or a dead QEMU of a VM that no action is handling yet (a busy one is seen when the
    /// action ends).
    private func concerns(_ news: DomainNews) -> Bool {
        switch news {
        case .libvirt(.lifecycle(let domain, _, _, _)): return domain.hasPrefix(domainPrefix)
        case .libvirt(.reconnected): return true
        case .libvirt(.disconnected): return false
        case .qemuDied(let names):
            return names.contains { name in
                name.hasPrefix(domainPrefix) && Int64(name.dropFirst(domainPrefix.count)).map { !busy.contains($0) } ?? false
            }
        }
    }

    /// One comparison of the store with libvirt; returns the number of actions started.
    @discardableResult
    package func pass() async -> Int {
        let started = Date()
        let clock = ContinuousClock.now
        defer {
            ApplianceMetrics.machinePasses.increment()
            ApplianceMetrics.machinePassDuration.record(duration: ContinuousClock.now - clock)
        }
        do {
            var actions = 0
            let rows = try await store.machineRows()
            // A dead QEMU is handled before libvirt is asked anything: while libvirt cleans up
            // after it, its domain listing can block for a second or more.
            let dead = liveness.deadDomains(prefix: domainPrefix)
            for row in rows where dead.contains(row.domainName) && row.status.hasDomain && !busy.contains(row.id) {
                guard let machine = try await store.machine(row.id) else { continue }
                actions += 1
                launch(.crashed, machine)
            }
            var domains: [String: DomainState] = [:]
            for domain in try await libvirt.listDomains() where domain.name.hasPrefix(domainPrefix) {
                // A domain whose QEMU died is gone, even while libvirt still lists it.
                domains[domain.name] = dead.contains(domain.name) ? .crashed : domain.state
            }
            let now = Date()
            for row in rows where row.status != .destroyed && !busy.contains(row.id) {
                guard let action = MachinePlan.next(row, domain: domains[row.domainName]) else {
                    try await ensureAgent(row)
                    continue
                }
                if let failure = failures[row.id], !failure.allows(at: now) { continue }
                guard let machine = try await store.machine(row.id) else { continue }
                actions += 1
                launch(action, machine)
            }
            actions += try await destroyOrphans(domains: domains, known: Set(rows.map(\.domainName)))
            stats.passes += 1
            stats.lastPassSeconds = Date().timeIntervalSince(started)
            stats.lastPassMachines = rows.count
            stats.lastPassActions = actions
            return actions
        } catch {
            logger.warning("machine reconcile pass failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// Domains named like ours whose machine the store does not know: destroyed, logged.
    private func destroyOrphans(domains: [String: DomainState], known: Set<String>) async throws -> Int {
        var count = 0
        for (name, state) in domains where !known.contains(name) && state != .shutoff {
            count += 1
            logger.warning("destroying orphan machine domain", metadata: ["domain": "\(name)"])
            _ = try await libvirt.destroyDomainReleasingLeases(name: name)
            try await store.record("machine.orphan", "destroyed domain \(name) that the store does not know")
        }
        return count
    }

    package func passStats() -> PassStats { stats }

    // MARK: - Action tasks

    private func launch(_ action: MachineAction, _ machine: MachineRecord) {
        let id = machine.id!
        busy.insert(id)
        Task {
            do {
                try await perform(action, machine)
                failures[id] = nil
            } catch {
                await actionFailed(action, machine, error)
            }
            busy.remove(id)
            kick()
        }
    }

    private func actionFailed(_ action: MachineAction, _ machine: MachineRecord, _ error: Error) async {
        let id = machine.id!
        var backoff = failures[id] ?? Backoff()
        backoff.failed()
        failures[id] = backoff
        let count = backoff.failures
        logger.warning("machine action failed", metadata: ["machine": "\(id)", "action": "\(action)", "try": "\(count)", "error": "\(error)"])
        try? await store.recordMachine("machine.action_failed", machine: id, "\(action) failed (try \(count)): \(error)")
        try? await store.setReason(machine: id, "try \(count) of \(settings.startAttempts) failed: \(error)")
        if action == .start || action == .restartFromStopped, count >= settings.startAttempts {
            failures[id] = nil
            _ = try? await store.setStatus(machine: id, from: [.starting], to: .failedToStart, reason: "\(error)")
            await closeAgent(id)
            _ = try? await libvirt.destroyDomainReleasingLeases(name: machine.domainName)
        }
    }

    // MARK: - Agents

    package func attachAgent(_ machine: MachineRecord) async {
        let id = machine.id!
        guard machine.spec.runAgent else { return }
        let store = store
        await agents.attach(
            .machine(id), socketPath: files(id).agentSocket,
            onMessage: { [weak self] message in await self?.agentMessage(id, message) },
            onReject: { reason in try? await store.recordMachine("agent.rejected", machine: id, reason) })
    }

    /// A VM whose domain runs as it should but whose agent nobody listens to (the appliance was
    /// restarted, or killed between the domain's start and the attach) gets its session: the
    /// session's hello on connect brings the guest's answer, and with it the IP.
    private func ensureAgent(_ row: MachinePlan.Row) async throws {
        guard row.runAgent, [.installing, .running, .suspended].contains(row.status), !(await agents.isOpen(.machine(row.id))),
              let machine = try await store.machine(row.id) else { return }
        logger.info("attaching the agent of a running machine", metadata: ["machine": "\(row.id)"])
        await attachAgent(machine)
    }

    package func closeAgent(_ id: Int64) async {
        await agents.close(.machine(id))
    }

    private func agentMessage(_ id: Int64, _ message: AgentMessage) async {
        guard message.type == .hello else { return }
        do {
            // The address is the host's record (the NAT lease), not the guest's claim.
            guard let machine = try await store.machine(id) else { return }
            let ip = await GuestAddress(libvirt: libvirt, network: machine.spec.network ?? network).address(domain: machine.domainName)
            if try await store.machineHello(machine: id, ip: ip, agentVersion: message.agentVersion) {
                logger.info("machine agent hello", metadata: ["machine": "\(id)", "ip": "\(ip ?? "-")"])
            }
        } catch is CancellationError {
            // The session closed (the VM is stopping) while the hello waited for its lease.
            logger.debug("machine agent hello dropped: its session closed", metadata: ["machine": "\(id)"])
        } catch {
            logger.error("recording a machine's hello failed", metadata: ["machine": "\(id)", "error": "\(error)"])
        }
    }
}
