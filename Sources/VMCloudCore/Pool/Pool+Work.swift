import AgentProtocol
import Foundation

/// The work the engine runs for one pool VM, one piece at a time per VM. Each piece ends with
/// its store write (the engine's next pass reads the VM's new state and starts what follows);
/// a piece that fails marks the VM failed.
extension Pool {
    func boot(_ vm: VMRecord) async {
        let id = vm.id!
        do {
            try await hypervisor.start(vm)
            try await store.transition(vm: id, .domainStarted)
            await attachAgent(id)
        } catch {
            bootFailed()
            try? await fail(id, reason: "domain start failed: \(error)")
        }
    }

    /// A pending VM whose domain runs: the appliance died between the start and the write.
    func adopt(_ id: Int64) async {
        do {
            if try await store.transition(vm: id, .domainStarted) { await attachAgent(id) }
        } catch {
            try? await fail(id, reason: "adopting its domain failed: \(error)")
        }
    }

    func configure(_ id: Int64, _ setup: Store.BrowserSetup) async {
        do {
            let reply = try await agent(id).request(
                AgentMessage(type: .configure, homepage: setup.homepage, cookies: setup.cookies, kiosk: setup.browser == .kiosk),
                timeout: settings.agentTimeout)
            guard reply.type == .configured else { throw AgentError.unexpectedReply(reply.type) }
            let configured = try await store.configured(vm: id, homepage: reply.homepage, loadError: reply.loadError)
            configured.assigned.forEach(Self.recordWait)
            faults = Backoff()
        } catch {
            try? await fail(id, reason: "configure failed: \(error)")
        }
    }

    /// Loads a job's URL in its VM; the capture that the agent sends after the load ends the
    /// try (see agentMessage), the job's timeout or an agent error end it otherwise.
    func runJob(_ claim: Store.JobClaim) async {
        let job = claim.job
        // The deadline runs whatever happens to the load below.
        Task {
            try? await Task.sleep(for: .milliseconds(job.timeoutMs))
            if let vmId = try? await store.endJobAttempt(claim.attemptId, .timeout, reason: "no capture within \(job.timeoutMs) ms") {
                logger.info("job try timed out", metadata: ["job": "\(job.id!)", "vm": "\(vmId)"])
                kick()
            }
        }
        do {
            let reply = try await agent(claim.vmId).request(
                AgentMessage(type: .configure, homepage: job.url, cookies: job.cookies ?? []),
                timeout: min(settings.agentTimeout, Double(job.timeoutMs) / 1000))
            guard reply.type == .configured else { throw AgentError.unexpectedReply(reply.type) }
            if let failure = reply.loadError {
                // The job asked for this page's capture; an error page is no answer to it.
                _ = try await store.endJobAttempt(claim.attemptId, .error, reason: "loading the page failed: \(failure)")
                kick()
            }
        } catch {
            _ = try? await store.endJobAttempt(claim.attemptId, .error, reason: "loading the page failed: \(error)")
        }
    }

    func reset(_ id: Int64) async {
        await TestGate.pass("reset")
        let started = ContinuousClock.now
        await captures.drop(vm: id)
        do {
            let reply = try await agent(id).request(AgentMessage(type: .reset), timeout: settings.agentTimeout)
            guard reply.type == .resetDone else { throw AgentError.unexpectedReply(reply.type) }
            ApplianceMetrics.resetDuration.record(duration: ContinuousClock.now - started)
            _ = try await store.resetDone(vm: id)
            faults = Backoff()
        } catch {
            try? await fail(id, reason: "reset failed: \(error)")
        }
    }

    /// Working when the appliance started: our wait for its capture died with the old process,
    /// so the job goes back to the queue and the VM is reset.
    func interruptedJob(_ id: Int64) async {
        await attachAgent(id)
        do {
            _ = try await store.interruptedJob(vm: id)
        } catch {
            try? await fail(id, reason: "returning its interrupted job failed: \(error)")
        }
    }

    func destroy(_ vm: VMRecord) async {
        let id = vm.id!
        await agents.close(.pool(vm: id))
        await captures.drop(vm: id)
        rejections[id] = nil
        do {
            try await hypervisor.destroy(vmId: id, domainName: vm.domainName)
            try await store.transition(vm: id, .destroyed)
        } catch {
            logger.error("destroy failed; will retry", metadata: ["vm": "\(id)", "error": "\(error)"])
        }
    }

    /// Backs off new boots: 1 s after the first failure, doubling up to a minute.
    func bootFailed() {
        let delay = boots.failed()
        logger.warning("pausing boots after a failure", metadata: ["failures": "\(boots.failures)", "seconds": "\(delay)"])
    }

    func fail(_ id: Int64, reason: String) async throws {
        if try await store.markFailed(vm: id, reason: reason) {
            logger.warning("VM failed", metadata: ["vm": "\(id)", "reason": "\(reason)"])
            let pause = faults.failed()
            if faults.failures > 1 {
                try? await store.record("pool.boots_paused", vm: id,
                    "\(faults.failures) VM faults in a row (last: \(reason.prefix(300))): no new VM for \(Int(pause)) s")
            }
        }
        kick()
    }
}
