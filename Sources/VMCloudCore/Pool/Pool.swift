import AgentProtocol
import Foundation
import Logging

/// The pool's role in the engine, and its requests from the applications (size, batches,
/// locks, releases). A request writes the store and kicks the engine; the engine's pass asks
/// `plan` (Pool+Plan.swift) what each pool VM needs and runs that work (Pool+Work.swift); the
/// guests' own messages come in through Pool+Agents.swift.
package actor Pool: VMRole {
    package nonisolated let store: Store
    package nonisolated let hypervisor: Hypervisor
    package nonisolated let settings: PoolSettings
    package nonisolated let captures: CaptureReceiver
    let agents: GuestAgents
    let trigger: PassTrigger
    let logger: Logger

    /// Rejected guest messages per VM in the current minute: the event log records the first
    /// few, so that a hostile guest cannot flood it.
    var rejections: [Int64: (since: Date, count: Int)] = [:]
    /// Boot failures: while it says so, no new VM is booted (a broken image or host must not
    /// turn into a storm of doomed domains). A VM's hello ends it.
    var boots = Backoff()
    /// VM faults (agent gone, configure or reset refused, QEMU died) since the last VM that
    /// served: while it says so, no replacement is booted, so a fault that every new VM meets
    /// pauses instead of looping. A configure or reset that succeeds ends it. A site that
    /// fails to load is not a fault (the worker gets the browser showing it).
    var faults = Backoff()

    /// Whether new VMs may boot now, and when they may if not.
    var bootsAllowed: Bool { boots.allows() && faults.allows() }
    var bootsResumeAt: Date { max(boots.notBefore, faults.notBefore) }

    /// For `GET /v1/pool`: consecutive VM faults and boot failures, and until when boots pause.
    package func bootPause() -> (faults: Int, bootFailures: Int, until: Date?) {
        (faults.failures, boots.failures, bootsAllowed ? nil : bootsResumeAt)
    }

    package init(store: Store, hypervisor: Hypervisor, captures: CaptureReceiver, settings: PoolSettings, agents: GuestAgents,
                 trigger: PassTrigger, logger: Logger) {
        self.store = store
        self.captures = captures
        self.hypervisor = hypervisor
        self.settings = settings
        self.agents = agents
        self.trigger = trigger
        self.logger = logger
    }

    package nonisolated var domainPrefix: String { hypervisor.domainPrefix + "-vm" }
    package nonisolated var orphanEvent: String { "vm.orphan" }

    /// Something changed: the engine runs a pass soon.
    package nonisolated func kick() { trigger.kick() }

    // MARK: - Application requests

    package func setPoolSize(_ size: PoolSize) async throws {
        try await store.setPoolSize(size)
        kick()
    }

    package func prepareBatch(size: Int, homepage: String, cookies: [Cookie] = [], client: Int64? = nil, limits: BatchLimits = .none,
                              browser: BrowserWindow = .full) async throws -> BatchRecord {
        let batch = try await store.createBatch(size: size, homepage: homepage, cookies: cookies, client: client, limits: limits, browser: browser)
        kick()
        return batch
    }

    package func lock(batchId: Int64) async throws -> HandleRecord {
        let started = ContinuousClock.now
        defer { ApplianceMetrics.lockDuration.record(duration: ContinuousClock.now - started) }
        let handle = try await store.lock(batchId: batchId)
        // A lock assigns at most its own handle: a batch never has a prepared VM and a waiting
        // handle at once.
        if handle.state == .assigned { Self.recordWait(handle) }
        // A lease is a new deadline the engine must schedule a pass for.
        if handle.leaseExpiresAt != nil { kick() }
        return handle
    }

    /// How long a handle waited for its VM: recorded after the commit that assigned it, so a
    /// rolled-back assignment counts nothing.
    static func recordWait(_ handle: HandleRecord) {
        guard let assignedAt = handle.assignedAt else { return }
        ApplianceMetrics.handleWait.recordSeconds(assignedAt.timeIntervalSince(handle.createdAt))
    }

    /// Ends a handle; its VM (now resetting) is reset by the next pass.
    package func release(handleId: Int64) async throws {
        _ = try await store.release(handleId: handleId)
        kick()
    }

    /// Ends a batch; its prepared VMs (now resetting) are reset by the next pass.
    package func cancelBatch(batchId: Int64) async throws {
        _ = try await store.cancelBatch(batchId: batchId)
        kick()
    }

    /// Asks a VM's agent what it has applied right now (the guest's own view, not the store's).
    package func agentState(vm id: Int64) async throws -> AgentMessage {
        try await requireAgent(id)
        return try await agent(id).request(AgentMessage(type: .status), timeout: 10)
    }

    /// Loads a URL in a live VM's browser (the agent answers once it has loaded).
    package func navigate(vm id: Int64, url: String) async throws {
        try await requireAgent(id)
        _ = try await agent(id).request(AgentMessage(type: .navigate, url: url), timeout: settings.agentTimeout)
    }

    /// An operator request needs a VM whose domain runs (its agent may answer, its screen shows).
    @discardableResult
    package func requireRunning(_ id: Int64) async throws -> VMRecord {
        guard let vm = try await store.vm(id) else { throw StoreError.vmNotFound(id) }
        guard vm.state.isLive, vm.state != .pending else {
            throw Refusal.conflict(code: "vm_not_running", "VM \(id) is \(vm.state.rawValue)")
        }
        return vm
    }

    /// A request for the guest's agent needs one that said hello: a booting VM's agent is a
    /// conflict to retry later, not a failed gateway.
    private func requireAgent(_ id: Int64) async throws {
        let vm = try await requireRunning(id)
        guard vm.state != .booting else {
            throw Refusal.conflict(code: "vm_not_ready", "VM \(id) is booting: its agent has not said hello yet")
        }
    }
}
