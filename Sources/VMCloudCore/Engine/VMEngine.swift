import Foundation
import Libvirt
import Logging

/// The one desired-state reconciler of every VM this appliance runs: pool VMs, generic VMs,
/// keyed viewers and proxy resources. A pass lists libvirt's domains once, asks each role what
/// its VMs need, runs that work (at most one task per VM: the one busy set), and destroys the
/// domains of ours that no role knows. Passes come on every kick (`PassTrigger`), on the crash
/// watch's news, every `pollInterval`, and when a role asked to look again at a given time.
package actor VMEngine {
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

    package nonisolated let libvirt: LibvirtClient
    private let store: Store
    private let roles: [any VMRole]
    private let agents: GuestAgents
    private let trigger: PassTrigger
    private let reaper: Reaper?
    private let pollInterval: TimeInterval
    private let reapInterval: TimeInterval
    private let logger: Logger
    /// `vmcloud-<instance>-`: every role's domains start with it.
    private let prefix: String
    private let liveness = QemuLiveness()
    /// Whether a pass also reads the QEMU pid files (off only in tests that must prove that
    /// libvirt's event alone is enough, like the watch's poll).
    private let qemuPidCheck: Bool

    /// VMs with work running: no pass starts a second piece for them.
    private var busy: Set<DomainOwner> = []
    /// Adoptions asked for (one at start, one each time libvirt comes back) and done: while
    /// one is outstanding, passes adopt what runs. Counted, so that a reconnect heard during a
    /// pass is not undone by that pass's end.
    private var adoptionsAsked = 1
    private var adoptionsDone = 0
    private var nextPassAt = Date.distantPast
    /// The pause before retrying an adopting pass that failed (1 s, doubling up to 10 s).
    private var adoptRetry: TimeInterval = 1
    private var stats = PassStats()
    /// Why each of our domains that ended did (libvirt's lifecycle event, or its dead QEMU),
    /// kept for a minute: long enough for the pass that finds the domain gone.
    private var endings: [String: (reason: String, at: Date)] = [:]

    package init(store: Store, libvirt: LibvirtClient, roles: [any VMRole], agents: GuestAgents, trigger: PassTrigger,
                 reaper: Reaper? = nil, pollInterval: TimeInterval = 5, reapInterval: TimeInterval = 300,
                 qemuPidCheck: Bool = !TestSwitch.noQemuPidPoll, logger: Logger) {
        self.store = store
        self.libvirt = libvirt
        self.roles = roles
        self.agents = agents
        self.trigger = trigger
        self.reaper = reaper
        self.pollInterval = pollInterval
        self.reapInterval = reapInterval
        self.qemuPidCheck = qemuPidCheck
        self.logger = logger
        self.prefix = "vmcloud-\(store.instanceId)-"
    }

    package nonisolated func kick() { trigger.kick() }

    package func passStats() -> PassStats { stats }

    /// Runs until cancelled. The first pass adopts what libvirt runs; until it succeeds (a
    /// libvirtd that is down now is usually back within seconds) nothing is booted or failed.
    package func run(news: AsyncStream<DomainNews>) async throws {
        await TestGate.pass("resync")  // a test kills libvirtd here, before the adopting pass
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in self.trigger.kicks { await self.pass() }
            }
            group.addTask {
                while !Task.isCancelled {
                    if await self.due() { self.kick() }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            group.addTask {
                for await item in news { await self.heard(item) }
            }
            if let reaper {
                group.addTask {
                    while !Task.isCancelled {
                        await self.reap(reaper)
                        try await Task.sleep(for: .seconds(self.reapInterval))
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Whether a pass is due by time (the poll, a role's deadline, a retry); once it is, the
    /// next one is not due until that pass sets it.
    private func due() -> Bool {
        guard Date() >= nextPassAt else { return false }
        nextPassAt = .distantFuture
        return true
    }

    private func heard(_ news: DomainNews) async {
        switch news {
        case .libvirt(.lifecycle(let domain, _, let kind, let detail)):
            guard domain.hasPrefix(prefix) else { return }
            if kind == .stopped || kind == .crashed || kind == .shutdown { endings[domain] = ("domain \(kind) (libvirt detail \(detail))", Date()) }
            kick()
        case .qemuDied(let names):
            for name in names where endings[name] == nil { endings[name] = ("domain crashed (its QEMU process exited)", Date()) }
            kick()
        case .libvirt(.disconnected(let reason)):
            logger.error("libvirt connection lost", metadata: ["reason": "\(reason)"])
            try? await store.record("libvirt.disconnected", reason)
        case .libvirt(.reconnected):
            logger.info("libvirt connection re-opened; adopting its domains again")
            try? await store.record("libvirt.reconnected", "re-reading domains")
            adoptionsAsked += 1
            kick()
        }
    }

    /// One comparison of every role's rows with libvirt; returns the pieces of work started.
    @discardableResult
    package func pass() async -> Int {
        let started = Date()
        let adoption = adoptionsAsked
        let adopting = adoptionsDone < adoption
        do {
            var launched = 0
            let dead = qemuPidCheck ? liveness.deadDomains(prefix: prefix) : []
            if !dead.isEmpty {
                for role in roles { launched += launch(try await role.planDead(dead, busy: busy)) }
            }
            let busyBefore = busy
            var domains: [String: DomainState] = [:]
            for domain in try await libvirt.listDomains() where roles.contains(where: { domain.name.hasPrefix($0.domainPrefix) }) {
                // A domain whose QEMU died is gone, even while libvirt still lists it.
                domains[domain.name] = dead.contains(domain.name) ? .crashed : domain.state
            }
            // A domain that runs again (a restarted generic VM keeps its name) ended no more.
            endings = endings.filter { name, ending in !EnginePass.runs(domains[name]) && started.timeIntervalSince(ending.at) < 60 }
            let pass = EnginePass(domains: domains, busy: busyBefore, adopting: adopting, endings: endings.mapValues(\.reason))
            var known: Set<String> = []
            var count = 0
            var lookAgainAt = started.addingTimeInterval(pollInterval)
            for role in roles {
                let plan = try await role.plan(pass)
                launched += launch(plan.work)
                await listen(to: plan.listening, busy: busyBefore.union(busy), role)
                known.formUnion(plan.known)
                count += plan.count
                if let at = plan.lookAgainAt { lookAgainAt = min(lookAgainAt, at) }
            }
            launched += try await destroyOrphans(domains, known: known)
            adoptionsDone = max(adoptionsDone, adoption)
            adoptRetry = 1
            nextPassAt = lookAgainAt
            stats.passes += 1
            stats.lastPassSeconds = Date().timeIntervalSince(started)
            stats.lastPassMachines = count
            stats.lastPassActions = launched
            return launched
        } catch {
            if adopting {
                logger.error("adopting pass failed; retrying", metadata: ["error": "\(error)", "pause": "\(adoptRetry) s"])
                try? await store.record("pool.resync_failed", "\(error); retrying in \(Int(adoptRetry)) s")
                nextPassAt = Date().addingTimeInterval(adoptRetry)
                adoptRetry = min(adoptRetry * 2, 10)
            } else {
                logger.warning("reconcile pass failed", metadata: ["error": "\(error)"])
                nextPassAt = Date().addingTimeInterval(pollInterval)
            }
            return 0
        }
    }

    /// Attaches the agent of each VM that should be listened to and has no session. A VM that
    /// was busy during the pass is left to its work (a boot attaches at its end, a destroy closes).
    private func listen(to owners: Set<DomainOwner>, busy: Set<DomainOwner>, _ role: any VMRole) async {
        guard !owners.isEmpty else { return }
        let open = await agents.openOwners()
        for owner in owners.subtracting(open).subtracting(busy) {
            logger.info("attaching the agent of a running VM", metadata: ["vm": "\(owner)"])
            await role.attachAgent(owner)
        }
    }

    /// Starts each piece of work whose VM has none running; returns how many started.
    private func launch(_ work: [VMWork]) -> Int {
        var count = 0
        for item in work where busy.insert(item.owner).inserted {
            count += 1
            Task {
                await item.run()
                self.finished(item.owner)
            }
        }
        return count
    }

    private func finished(_ owner: DomainOwner) {
        busy.remove(owner)
        kick()
    }

    /// Domains named like a role's that no row knows: destroyed, recorded.
    private func destroyOrphans(_ domains: [String: DomainState], known: Set<String>) async throws -> Int {
        var count = 0
        for (name, state) in domains where !known.contains(name) && state != .shutoff {
            guard let role = roles.first(where: { name.hasPrefix($0.domainPrefix) }) else { continue }
            count += 1
            logger.warning("destroying orphan domain", metadata: ["domain": "\(name)"])
            _ = try await libvirt.destroyDomainReleasingLeases(name: name)
            try await store.record(role.orphanEvent, "destroyed domain \(name) that the store does not know")
        }
        return count
    }

    /// One reaper pass (leftover files and sinks of VMs that are gone); failures are logged.
    private func reap(_ reaper: Reaper) async {
        do {
            let removed = try await reaper.sweep()
            if !removed.isEmpty { logger.info("reaper removed leftovers", metadata: ["items": "\(removed.count)"]) }
        } catch {
            logger.warning("reaper pass failed", metadata: ["error": "\(error)"])
        }
    }
}
