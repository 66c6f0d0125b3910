import AgentProtocol
import Foundation
import Metrics
import Libvirt
import Logging
import NIOCore

/// Drives the VMs towards what the store says: boots and destroys domains, talks to the agents,
/// and turns their answers and libvirt's events into store transitions. The store is the truth
/// for desired state, libvirt for real state; `resync` compares the two.
package actor Pool {
    package nonisolated let store: Store
    package nonisolated let hypervisor: Hypervisor
    package nonisolated let settings: PoolSettings
    package nonisolated let captures: CaptureReceiver
    private let agents: GuestAgents
    private let logger: Logger

    /// VMs with a boot, configure, reset or destroy under way, so that reconcile passes and
    /// resyncs never start a second one.
    private var busy: Set<Int64> = []
    /// Rejected guest messages per VM in the current minute: the event log records the first
    /// few, so that a hostile guest cannot flood it.
    private var rejections: [Int64: (since: Date, count: Int)] = [:]
    /// Boot failures: while it says so, no new VM is booted (a broken image or host must not
    /// turn into a storm of doomed domains). A VM's hello ends it.
    private var boots = Backoff()
    private let kicks: AsyncStream<Void>
    private let kickContinuation: AsyncStream<Void>.Continuation

    package init(store: Store, hypervisor: Hypervisor, captures: CaptureReceiver, settings: PoolSettings, agents: GuestAgents, logger: Logger) {
        self.store = store
        self.captures = captures
        self.hypervisor = hypervisor
        self.settings = settings
        self.agents = agents
        self.logger = logger
        (kicks, kickContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Runs until cancelled: resync with libvirt, then reconcile on every change and tick, and
    /// turn the watch's news (read only after the resync; it waits in the stream) into failures.
    ///
    /// Throws only when cancelled: a resync that fails (libvirtd died while it ran) is retried,
    /// and the loops below log their own failures. It is not restartable (its streams end when
    /// the task running it is cancelled), so nothing else may escape it.
    package func run(news: AsyncStream<DomainNews>) async throws {
        try await resyncUntilItSucceeds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.consume(news) }
            group.addTask {
                while !Task.isCancelled {
                    await self.reap()
                    try await Task.sleep(for: .seconds(self.settings.reapInterval))
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(self.settings.tickInterval))
                    await self.kick()
                }
            }
            group.addTask {
                for await _ in self.kicks {
                    await self.reconcileOnce()
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    package func kick() { kickContinuation.yield() }

    /// One reaper pass (leftover files and sinks of VMs that are gone); failures are logged.
    package func reap() async {
        do {
            let removed = try await Reaper(store: store, hypervisor: hypervisor).sweep()
            if !removed.isEmpty { logger.info("reaper removed leftovers", metadata: ["items": "\(removed.count)"]) }
        } catch {
            logger.warning("reaper pass failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Application requests

    package func setPoolSize(_ size: PoolSize) async throws {
        try await store.setPoolSize(size)
        kick()
    }

    package func prepareBatch(size: Int, homepage: String, cookies: [Cookie] = [], client: Int64? = nil) async throws -> BatchRecord {
        let batch = try await store.createBatch(size: size, homepage: homepage, cookies: cookies, client: client)
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
        return handle
    }

    /// How long a handle waited for its VM: recorded after the commit that assigned it, so a
    /// rolled-back assignment counts nothing.
    private static func recordWait(_ handle: HandleRecord) {
        guard let assignedAt = handle.assignedAt else { return }
        ApplianceMetrics.handleWait.recordSeconds(assignedAt.timeIntervalSince(handle.createdAt))
    }

    package func release(handleId: Int64) async throws {
        if case .reset(let vmId) = try await store.release(handleId: handleId) {
            startReset(vmId)
        }
        kick()
    }

    package func cancelBatch(batchId: Int64) async throws {
        for vmId in try await store.cancelBatch(batchId: batchId) { startReset(vmId) }
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

    // MARK: - Reconcile

    private func reconcileOnce() async {
        let started = ContinuousClock.now
        defer {
            ApplianceMetrics.poolPasses.increment()
            ApplianceMetrics.poolPassDuration.record(duration: ContinuousClock.now - started)
        }
        do {
            for grant in try await store.grantIdleVMs() {
                startConfigure(grant.vmId, grant.setup)
            }
            // Workers' batches first; capture jobs take the VMs left idle.
            for claim in try await store.claimJobs() {
                startJob(claim)
            }
            let vms = try await store.vms()
            let plan = PoolPlanner.plan(
                size: try await store.poolSize(), vms: vms,
                openBatches: try await store.batches().filter { $0.state == .open },
                now: Date(), bootTimeout: settings.bootTimeout, maxConcurrentBoots: settings.maxConcurrentBoots)
            for _ in 0..<(boots.allows() ? plan.boot : 0) {
                let vm = try await store.insertPendingVM(domainPrefix: hypervisor.domainPrefix)
                startBoot(vm)
            }
            for id in plan.bootTimedOut {
                bootFailed()
                try await fail(id, reason: "agent did not say hello within \(Int(settings.bootTimeout)) s of boot")
            }
            for id in plan.destroy where try await store.transition(vm: id, .retired) {
                logger.info("destroying idle VM", metadata: ["vm": "\(id)"])
            }
            for vm in vms where vm.state == .failed {
                try await store.transition(vm: vm.id!, .discarded)
            }
            for vm in try await store.vms() where vm.state == .destroying && !busy.contains(vm.id!) {
                startDestroy(vm)
            }
        } catch {
            logger.error("reconcile pass failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Operations on one VM (each runs as its own task, at most one per VM)

    private func startBoot(_ vm: VMRecord) {
        let id = vm.id!
        guard busy.insert(id).inserted else { return }
        Task {
            do {
                try await hypervisor.start(vm)
                try await store.transition(vm: id, .domainStarted)
                attachAgent(id)
            } catch {
                bootFailed()
                try? await fail(id, reason: "domain start failed: \(error)")
            }
            done(id)
        }
    }

    private func startConfigure(_ id: Int64, _ setup: Store.BrowserSetup) {
        guard busy.insert(id).inserted else { return }
        Task {
            do {
                let reply = try await agent(id).request(AgentMessage(type: .configure, homepage: setup.homepage, cookies: setup.cookies),
                                                        timeout: settings.agentTimeout)
                guard reply.type == .configured else { throw AgentError.unexpectedReply(reply.type) }
                done(id)
                let configured = try await store.configured(vm: id, homepage: reply.homepage)
                configured.assigned.forEach(Self.recordWait)
                if configured.outcome == .mustReset { startReset(id) }
            } catch {
                done(id)
                try? await fail(id, reason: "configure failed: \(error)")
            }
        }
    }

    /// Loads a job's URL in its VM; the capture that the agent sends after the load ends the
    /// try (see agentMessage), the job's timeout or an agent error end it otherwise.
    private func startJob(_ claim: Store.JobClaim) {
        let id = claim.vmId
        let job = claim.job
        // The deadline runs whatever happens to the load below.
        Task {
            try? await Task.sleep(for: .milliseconds(job.timeoutMs))
            if let vmId = try? await store.endJobAttempt(claim.attemptId, .timeout, reason: "no capture within \(job.timeoutMs) ms") {
                logger.info("job try timed out", metadata: ["job": "\(job.id!)", "vm": "\(vmId)"])
                startReset(vmId)
            }
        }
        guard busy.insert(id).inserted else { return }
        Task {
            do {
                let reply = try await agent(id).request(
                    AgentMessage(type: .configure, homepage: job.url, cookies: job.cookies ?? []),
                    timeout: min(settings.agentTimeout, Double(job.timeoutMs) / 1000))
                guard reply.type == .configured else { throw AgentError.unexpectedReply(reply.type) }
                done(id)
            } catch {
                done(id)
                if let vmId = try? await store.endJobAttempt(claim.attemptId, .error, reason: "loading the page failed: \(error)") {
                    startReset(vmId)
                }
            }
        }
    }

    private func startReset(_ id: Int64) {
        guard busy.insert(id).inserted else { return }
        Task {
            await TestGate.pass("reset")
            let started = ContinuousClock.now
            await captures.drop(vm: id)
            do {
                let reply = try await agent(id).request(AgentMessage(type: .reset), timeout: settings.agentTimeout)
                guard reply.type == .resetDone else { throw AgentError.unexpectedReply(reply.type) }
                ApplianceMetrics.resetDuration.record(duration: ContinuousClock.now - started)
                done(id)
                if case .configure(let setup) = try await store.resetDone(vm: id) {
                    startConfigure(id, setup)
                }
            } catch {
                done(id)
                try? await fail(id, reason: "reset failed: \(error)")
            }
        }
    }

    private func startDestroy(_ vm: VMRecord) {
        let id = vm.id!
        guard busy.insert(id).inserted else { return }
        Task {
            await agents.close(.pool(vm: id))
            await captures.drop(vm: id)
            rejections[id] = nil
            do {
                try await hypervisor.destroy(vmId: id, domainName: vm.domainName)
                try await store.transition(vm: id, .destroyed)
            } catch {
                logger.error("destroy failed; will retry", metadata: ["vm": "\(id)", "error": "\(error)"])
            }
            done(id)
        }
    }

    /// Backs off new boots: 1 s after the first failure, doubling up to a minute.
    private func bootFailed() {
        let delay = boots.failed()
        logger.warning("pausing boots after a failure", metadata: ["failures": "\(boots.failures)", "seconds": "\(delay)"])
    }

    private func done(_ id: Int64) {
        busy.remove(id)
        kick()
    }

    private func fail(_ id: Int64, reason: String) async throws {
        if try await store.markFailed(vm: id, reason: reason) {
            logger.warning("VM failed", metadata: ["vm": "\(id)", "reason": "\(reason)"])
        }
        kick()
    }

    // MARK: - Agents

    /// The VM's agent session (GuestAgents owns it: one owner for every guest's session).
    private func agent(_ id: Int64) async -> AgentSession {
        await agents.session(
            .pool(vm: id), socketPath: hypervisor.state.agentSocket(vm: id),
            onMessage: { [weak self] message in await self?.agentMessage(id, message) },
            onReject: { [weak self] reason in await self?.rejected(id, reason) })
    }

    private func attachAgent(_ id: Int64) {
        Task { await agent(id).start() }
    }

    /// Unsolicited messages from a guest. Only hello changes state; the rest is logged.
    private func agentMessage(_ id: Int64, _ message: AgentMessage) async {
        switch message.type {
        case .hello:
            do {
                // The address is the host's record (the NAT lease), not the guest's claim.
                guard let vm = try await store.vm(id) else { return }
                let ip = await hypervisor.guestAddress.address(domain: vm.domainName)
                let outcome = try await store.agentHello(vm: id, ip: ip, agentVersion: message.agentVersion)
                if outcome == .becameIdle {
                    boots = Backoff()
                    ApplianceMetrics.bootDuration.recordSeconds(Date().timeIntervalSince(vm.createdAt))
                    logger.info("VM idle", metadata: ["vm": "\(id)", "ip": "\(ip ?? "-")"])
                }
                kick()
            } catch is CancellationError {
                // The session closed (the VM is failing or being destroyed) while the hello waited.
                logger.debug("agent hello dropped: its session closed", metadata: ["vm": "\(id)"])
            } catch {
                logger.error("recording agent hello failed", metadata: ["vm": "\(id)", "error": "\(error)"])
            }
        case .page, .blob:
            do {
                guard let vm = try await store.vm(id), vm.state.isLive else { return }
                if let page = try await captures.receive(vm: id, session: vm.session, message) {
                    let waitMet = try await JobCapture.meetsWait(page, vm: vm, store: store, blobs: captures.blobs)
                    if case .ended(let vmId) = try await store.insertCapture(page, waitMet: waitMet).1 {
                        startReset(vmId)
                    }
                    kick()
                }
            } catch let rejection as CaptureReceiver.Rejection {
                await rejected(id, rejection.description)
            } catch {
                logger.error("storing a capture failed", metadata: ["vm": "\(id)", "error": "\(error)"])
            }
        case .browserCrashed:
            logger.warning("browser crashed in the guest", metadata: ["vm": "\(id)", "message": "\(message.message ?? "")"])
            try? await store.record("vm.browser_crashed", vm: id, message.message ?? "the browser died; the agent restarts it")
        default:
            await rejected(id, "unexpected unsolicited \(message.type.rawValue)")
        }
    }

    /// A guest message that was not accepted: logged, recorded (rate-limited), otherwise ignored.
    private func rejected(_ id: Int64, _ reason: String) async {
        logger.warning("rejected a guest message", metadata: ["vm": "\(id)", "reason": "\(reason)"])
        let now = Date()
        var window = rejections[id] ?? (since: now, count: 0)
        if now.timeIntervalSince(window.since) > 60 { window = (since: now, count: 0) }
        window.count += 1
        rejections[id] = window
        if window.count <= 20 {
            try? await store.record("agent.rejected", vm: id, reason)
        } else if window.count == 21 {
            try? await store.record("agent.rejected", vm: id, "more rejections this minute are not recorded")
        }
    }

    // MARK: - libvirt: the real state

    /// A live VM whose QEMU process is gone fails now rather than when libvirt's event comes.
    private func failVMsWhoseQemuDied(_ dead: Set<String>) async {
        let dead = dead.filter { $0.hasPrefix(hypervisor.domainPrefix + "-vm") }
        guard !dead.isEmpty, let vms = try? await store.vms() else { return }
        for vm in vms where vm.state.isLive && vm.state != .pending && dead.contains(vm.domainName) {
            try? await fail(vm.id!, reason: "domain crashed (its QEMU process exited)")
        }
    }

    private func consume(_ news: AsyncStream<DomainNews>) async {
        for await item in news {
            guard case .libvirt(let event) = item else {
                if case .qemuDied(let dead) = item { await failVMsWhoseQemuDied(dead) }
                continue
            }
            switch event {
            case .lifecycle(let domain, _, let kind, let detail):
                guard kind == .stopped || kind == .crashed || kind == .shutdown else { continue }
                guard let vm = try? await store.vms().first(where: { $0.domainName == domain }),
                      vm.state.isLive else { continue }
                try? await fail(vm.id!, reason: "domain \(kind) (libvirt detail \(detail))")
            case .disconnected(let reason):
                logger.error("libvirt connection lost", metadata: ["reason": "\(reason)"])
                try? await store.record("libvirt.disconnected", reason)
            case .reconnected:
                logger.info("libvirt connection re-opened; resyncing")
                try? await store.record("libvirt.reconnected", "re-reading domains")
                do { try await resync() } catch { logger.error("resync failed", metadata: ["error": "\(error)"]) }
            }
        }
    }

    /// The start-up resync, retried with a growing pause (1 s to 10 s) until it succeeds: the
    /// pool must not start booting or failing VMs before it knows what libvirt has, and a libvirtd
    /// that is down now is usually back within seconds (the client reconnects by itself).
    private func resyncUntilItSucceeds() async throws {
        await TestGate.pass("resync")
        var pause: Duration = .seconds(1)
        while true {
            do {
                try await resync()
                return
            } catch {
                try Task.checkCancellation()
                logger.error("start-up resync failed; retrying", metadata: ["error": "\(error)", "pause": "\(pause)"])
                try? await store.record("pool.resync_failed", "\(error); retrying in \(pause)")
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
            }
        }
    }

    /// Compares the store with libvirt: adopts our running domains, restarts pending VMs, fails
    /// VMs whose domain vanished, and destroys domains of ours that the store does not know.
    package func resync() async throws {
        let domains = try await hypervisor.ourDomains()
        let vms = try await store.vms()
        let known = Set(vms.map(\.domainName))
        for vm in vms {
            let id = vm.id!
            let running = domains[vm.domainName] != nil
            switch vm.state {
            case .pending:
                if running {
                    try await store.transition(vm: id, .domainStarted)
                    attachAgent(id)
                } else {
                    startBoot(vm)
                }
            case .booting, .idle, .prepared, .locked:
                if running { attachAgent(id) } else { try await fail(id, reason: "domain gone") }
            case .preparing:
                if running, let batchId = vm.batchId, let batch = try await store.batch(batchId) {
                    attachAgent(id)
                    startConfigure(id, Store.BrowserSetup(batch))
                } else { try await fail(id, reason: "domain gone") }
            case .resetting:
                if running { attachAgent(id); startReset(id) } else { try await fail(id, reason: "domain gone") }
            case .working:
                // Our wait for its capture died with the old process: the job goes back to the queue.
                if running {
                    attachAgent(id)
                    if try await store.interruptedJob(vm: id) { startReset(id) }
                } else { try await fail(id, reason: "domain gone") }
            case .failed, .destroying, .destroyed:
                break
            }
        }
        for (name, vmId) in domains where !known.contains(name) {
            logger.warning("destroying orphan domain", metadata: ["domain": "\(name)"])
            try await store.record("vm.orphan", "destroyed domain \(name) (VM id \(vmId)) that the store does not know")
            try await hypervisor.destroy(vmId: vmId, domainName: name)
        }
        kick()
    }
}
