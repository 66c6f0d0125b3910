import AgentProtocol
import Foundation

/// The pool VMs' guest agents: their sessions (GuestAgents owns them, one owner for every
/// guest's session) and their unsolicited messages: hello, captured pages, browser crashes.
extension Pool {
    /// The VM's agent session, connecting (and reconnecting while the VM lives).
    func agent(_ id: Int64) async -> AgentSession {
        await agents.attach(
            .pool(vm: id), socketPath: hypervisor.state.agentSocket(vm: id),
            onMessage: { [weak self] message in await self?.agentMessage(id, message) },
            onReject: { [weak self] reason in await self?.rejected(id, reason) })
    }

    func attachAgent(_ id: Int64) async {
        _ = await agent(id)
    }

    package func attachAgent(_ owner: DomainOwner) async {
        if case .pool(let id) = owner { await attachAgent(id) }
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
                    _ = try await store.insertCapture(page, waitMet: waitMet)
                    // A capture that ended a job's try left its VM resetting.
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
}
