import Foundation

/// The pool's part of each engine pass: first the leases and batch expiries that are due (so
/// that the VMs they free are reset in this pass), then what each pool VM needs given libvirt's
/// domains (`PoolVMPlan`), then grants and job claims, then the pool's size (boots, retirements,
/// boot timeouts). The next deadline is a time to look again.
extension Pool {
    /// A live VM whose QEMU process is gone fails now rather than when libvirt's event comes.
    package func planDead(_ dead: Set<String>, busy: Set<DomainOwner>) async throws -> [VMWork] {
        let dead = dead.filter { $0.hasPrefix(domainPrefix) }
        guard !dead.isEmpty else { return [] }
        for vm in try await store.vms() where vm.state.isLive && vm.state != .pending && dead.contains(vm.domainName) {
            try await fail(vm.id!, reason: "domain crashed (its QEMU process exited)")
        }
        return []
    }

    package func plan(_ pass: EnginePass) async throws -> RolePlan {
        let started = ContinuousClock.now
        defer {
            ApplianceMetrics.poolPasses.increment()
            ApplianceMetrics.poolPassDuration.record(duration: ContinuousClock.now - started)
        }
        var result = RolePlan()
        // First what libvirt says: VMs that lost their domain fail before anything is granted,
        // retired or booted on the strength of their row.
        var snapshot = try await store.poolSnapshot()
        var wrote = false
        if let due = snapshot.nextDeadline, due <= Date() {
            let expired = try await store.expireDeadlines()
            if !expired.leases.isEmpty || !expired.batches.isEmpty {
                logger.info("leases or batches expired", metadata: ["handles": "\(expired.leases)", "batches": "\(expired.batches)"])
            }
            snapshot = try await store.poolSnapshot()
        }
        for vm in snapshot.vms {
            let owner = DomainOwner.pool(vm: vm.id!)
            result.known.insert(vm.domainName)
            result.count += 1
            let domainRuns = pass.exists(vm.domainName)
            if PoolVMPlan.listens(vm.state, domainRuns: domainRuns) { result.listening.insert(owner) }
            guard !pass.busy.contains(owner), let action = PoolVMPlan.next(vm.state, domainRuns: domainRuns, adopting: pass.adopting)
            else { continue }
            if let work = try await apply(action, vm, pass, &result) { result.work.append(work) } else { wrote = true }
        }

        // Then the pool's size and its demand. Workers' batches first; capture jobs take the
        // VMs left idle. Each VM given work here had none above (it was idle, or is new).
        let busy = Set(pass.busy.compactMap { owner -> Int64? in if case .pool(let vm) = owner { vm } else { nil } })
        // Both are write transactions: skipped when no VM could be taken (a pool of generic VMs
        // only must not pay for them on every pass).
        if snapshot.vms.contains(where: { $0.state == .idle && !busy.contains($0.id!) }) {
            for grant in try await store.grantIdleVMs(excluding: busy) {
                wrote = true
                result.work.append(VMWork(.pool(vm: grant.vmId)) { await self.configure(grant.vmId, grant.setup) })
            }
            for claim in try await store.claimJobs(excluding: busy) {
                wrote = true
                result.work.append(VMWork(.pool(vm: claim.vmId)) { await self.runJob(claim) })
            }
        }
        // The planner counts what is there now: read again only if the steps above changed it.
        if wrote { snapshot = try await store.poolSnapshot() }
        let sizing = PoolPlanner.plan(
            size: snapshot.size, vms: snapshot.vms, openBatches: snapshot.openBatches,
            now: Date(), bootTimeout: settings.bootTimeout, maxConcurrentBoots: settings.maxConcurrentBoots)
        for id in sizing.bootTimedOut {
            bootFailed()
            try await fail(id, reason: "agent did not say hello within \(Int(settings.bootTimeout)) s of boot")
        }
        for id in sizing.destroy where try await store.transition(vm: id, .retired) {
            logger.info("destroying idle VM", metadata: ["vm": "\(id)"])
            kick()  // the next pass destroys it
        }
        result.lookAgainAt = min(result.lookAgainAt ?? .distantFuture, sizing.lookAgainAt ?? .distantFuture,
                                 snapshot.nextDeadline ?? .distantFuture)
        if bootsAllowed {
            for _ in 0..<sizing.boot {
                let vm = try await store.insertPendingVM(domainPrefix: hypervisor.domainPrefix)
                result.known.insert(vm.domainName)
                result.work.append(VMWork(.pool(vm: vm.id!)) { await self.boot(vm) })
            }
        } else if sizing.boot > 0 {
            result.lookAgainAt = min(result.lookAgainAt!, bootsResumeAt)
        }
        if result.lookAgainAt == .distantFuture { result.lookAgainAt = nil }
        return result
    }

    /// Carries out one VM's action: quick store writes here, the rest as the VM's work.
    private func apply(_ action: PoolVMAction, _ vm: VMRecord, _ pass: EnginePass, _ result: inout RolePlan) async throws -> VMWork? {
        let id = vm.id!
        let owner = DomainOwner.pool(vm: id)
        switch action {
        case .boot:
            guard bootsAllowed else {
                result.lookAgainAt = min(result.lookAgainAt ?? bootsResumeAt, bootsResumeAt)
                return nil
            }
            return VMWork(owner) { await self.boot(vm) }
        case .adopt:
            return VMWork(owner) { await self.adopt(id) }
        case .configure:
            guard let batchId = vm.batchId, let batch = try await store.batch(batchId) else {
                try await fail(id, reason: "preparing for a batch that does not exist")
                return nil
            }
            let setup = Store.BrowserSetup(batch)
            return VMWork(owner) { await self.configure(id, setup) }
        case .reset:
            return VMWork(owner) { await self.reset(id) }
        case .interruptedJob:
            return VMWork(owner) { await self.interruptedJob(id) }
        case .fail:
            try await fail(id, reason: pass.endings[vm.domainName] ?? "domain gone")
        case .discard:
            try await store.transition(vm: id, .discarded)
            kick()  // the next pass destroys it
        case .destroy:
            return VMWork(owner) { await self.destroy(vm) }
        }
        return nil
    }
}
