import AgentProtocol
import Foundation
import Metrics
import Libvirt
import Logging
import NIOCore

/// The generic VMs' role in the engine (generic VMs, keyed viewers and proxy resources): each
/// pass it asks `MachinePlan` what each VM needs, from its row (desired and status) and its
/// domain, and hands the engine at most one action per VM. A failed action is retried with
/// backoff (a start at most three times); every action and failure is recorded as an event.
package actor MachineRole: VMRole {
    package struct Settings: Sendable {
        package var startAttempts = 3
        package var saveAttempts = 3
        /// A VM that crashes this many times within `crashWindow` stops being restarted.
        package var crashLimit = 5
        package var crashWindow: TimeInterval = 600

        package init(startAttempts: Int = 3, saveAttempts: Int = 3, crashLimit: Int = 5, crashWindow: TimeInterval = 600) {
            self.startAttempts = startAttempts
            self.saveAttempts = saveAttempts
            self.crashLimit = crashLimit
            self.crashWindow = crashWindow
        }
    }

    package nonisolated let store: Store
    package nonisolated let libvirt: LibvirtClient
    package nonisolated let state: StateDirectory
    package nonisolated let disks: MachineDisks
    package nonisolated let network: GuestNetwork
    package let settings: Settings
    package let agents: GuestAgents
    let trigger: PassTrigger
    package let logger: Logger

    /// Failures of the current action per VM and the time before which it is not retried.
    package var failures: [Int64: Backoff] = [:]
    package var crashes: [Int64: [Date]] = [:]

    package init(store: Store, libvirt: LibvirtClient, state: StateDirectory, disks: MachineDisks, network: GuestNetwork,
                 settings: Settings = Settings(), agents: GuestAgents, trigger: PassTrigger, logger: Logger) {
        self.store = store
        self.libvirt = libvirt
        self.state = state
        self.disks = disks
        self.network = network
        self.settings = settings
        self.agents = agents
        self.trigger = trigger
        self.logger = logger
    }

    package nonisolated var domainPrefix: String { store.machineDomainPrefix }
    package nonisolated var orphanEvent: String { "machine.orphan" }
    package nonisolated func files(_ id: Int64) -> MachineFiles { MachineFiles(state: state, id: id) }

    /// Something changed: the engine runs a pass soon.
    package nonisolated func kick() { trigger.kick() }

    /// A dead QEMU is handled at once, before libvirt is asked anything.
    package func planDead(_ dead: Set<String>, busy: Set<DomainOwner>) async throws -> [VMWork] {
        var work: [VMWork] = []
        for row in try await store.machineRows() where dead.contains(row.domainName) && row.status.hasDomain && !busy.contains(.machine(row.id)) {
            guard let machine = try await store.machine(row.id) else { continue }
            work.append(action(.crashed, machine))
        }
        return work
    }

    package func plan(_ pass: EnginePass) async throws -> RolePlan {
        let clock = ContinuousClock.now
        defer {
            ApplianceMetrics.machinePasses.increment()
            ApplianceMetrics.machinePassDuration.record(duration: ContinuousClock.now - clock)
        }
        let rows = try await store.machineRows()
        var result = RolePlan(known: Set(rows.map(\.domainName)), count: rows.count)
        let now = Date()
        for row in rows where row.status != .destroyed && !pass.busy.contains(.machine(row.id)) {
            guard let next = MachinePlan.next(row, domain: pass.domains[row.domainName]) else {
                // Nothing to do: the domain runs as it should, or the VM is at rest.
                if row.runAgent && row.status.hasDomain { result.listening.insert(.machine(row.id)) }
                continue
            }
            if let failure = failures[row.id], !failure.allows(at: now) {
                result.lookAgainAt = min(result.lookAgainAt ?? failure.notBefore, failure.notBefore)
                continue
            }
            guard let machine = try await store.machine(row.id) else { continue }
            result.work.append(action(next, machine))
        }
        return result
    }

    /// The action as the VM's piece of work: a failure is recorded and backs off its retry.
    private func action(_ next: MachineAction, _ machine: MachineRecord) -> VMWork {
        VMWork(.machine(machine.id!)) {
            do {
                try await self.perform(next, machine)
                await self.succeeded(machine.id!)
            } catch {
                await self.actionFailed(next, machine, error)
            }
        }
    }

    private func succeeded(_ id: Int64) { failures[id] = nil }

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

    package func attachAgent(_ owner: DomainOwner) async {
        guard case .machine(let id) = owner, let machine = try? await store.machine(id) else { return }
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
