import AgentProtocol
import Foundation
import GRDB

/// Every pool state change, each one transaction that also appends its event. Transitions are
/// conditional on the state they expect, so a late or repeated message (an agent's duplicate
/// ack, a libvirt event for a VM already gone) changes nothing. A VM's state changes only
/// through `Store.move`, which checks the edge against `VMState.apply` (VMLifecycle.swift); a
/// handle's likewise against `HandleState.apply` (HandleLifecycle.swift).
extension Store {
    // MARK: - Application requests

    package func setPoolSize(_ size: PoolSize) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM pool_size")
            try size.insert(db)
            try Store.log(db, "pool.size", "min \(size.min), max \(size.max), linger \(size.lingerMs) ms")
        }
    }

    package func createBatch(size: Int, homepage: String, cookies: [Cookie] = [], client: Int64? = nil, limits: BatchLimits = .none,
                             browser: BrowserWindow = .full) async throws -> BatchRecord {
        try await pool.write { db in
            var batch = BatchRecord(
                id: nil, size: size, homepage: homepage, state: .open, granted: 0, createdAt: Date(),
                cookies: cookies.isEmpty ? nil : cookies, clientId: client,
                leaseSeconds: limits.leaseSeconds, expiresAt: limits.expiresAt)
            batch.browser = browser
            try batch.insert(db)
            try Store.log(db, "batch.created", batch: batch.id, "size \(size), homepage \(homepage), \(cookies.count) cookie(s), \(browser.rawValue) browser\(limits)")
            return batch
        }
    }

    /// A new handle, assigned at once when the batch has a prepared VM, else queued (FIFO). On a
    /// cancelled batch the handle is born cancelled: the lock is allowed but never assigned.
    package func lock(batchId: Int64) async throws -> HandleRecord {
        try await pool.write { db in
            guard let batch = try BatchRecord.fetchOne(db, key: batchId) else {
                throw StoreError.batchNotFound(batchId)
            }
            let now = Date()
            var handle = HandleRecord(
                id: nil, batchId: batchId, state: batch.state == .open ? .waiting : .cancelled,
                vmId: nil, createdAt: now, assignedAt: nil, endedAt: batch.state == .open ? nil : now,
                reason: batch.state == .open ? nil : "batch cancelled")
            if batch.state == .open, let lease = batch.leaseSeconds {
                handle.leaseSeconds = lease
                handle.leaseExpiresAt = now.addingTimeInterval(TimeInterval(lease))
            }
            try handle.insert(db)
            try Store.log(db, "handle.created", batch: batchId, handle: handle.id, "state \(handle.state.rawValue)")
            try Store.assignWaiting(db, batchId: batchId)
            return try HandleRecord.fetchOne(db, key: handle.id!)!
        }
    }

    package enum ReleaseOutcome: Equatable {
        case nothingToDo
        /// The VM must be reset through its agent.
        case reset(vmId: Int64)
    }

    /// Ends a handle. An assigned VM goes to `resetting`; it stays in its batch when the batch is
    /// open and has waiting handles (it will serve the next one), else it returns to the pool.
    package func release(handleId: Int64) async throws -> ReleaseOutcome {
        try await pool.write { db in
            guard var handle = try HandleRecord.fetchOne(db, key: handleId) else {
                throw StoreError.handleNotFound(handleId)
            }
            return try Store.release(db, &handle)
        }
    }

    /// The release of `handle` inside the caller's transaction (the API's, or a lease's end).
    static func release(_ db: Database, _ handle: inout HandleRecord, reason: String? = nil) throws -> ReleaseOutcome {
        let handleId = handle.id!
        switch handle.state {
        case .released, .cancelled, .lost:
            return .nothingToDo
        case .waiting:
            handle.endedAt = Date()
            handle.reason = reason
            try Store.move(db, &handle, .released)
            try Store.log(db, "handle.released", batch: handle.batchId, handle: handleId, "left the queue")
            return .nothingToDo
        case .assigned:
            handle.endedAt = Date()
            handle.reason = reason
            try Store.move(db, &handle, .released)
            guard let vmId = handle.vmId, var vm = try VMRecord.fetchOne(db, key: vmId) else {
                return .nothingToDo
            }
            let batch = try BatchRecord.fetchOne(db, key: handle.batchId)
            let waiting = try HandleRecord
                .filter(Column("batchId") == handle.batchId && Column("state") == HandleState.waiting.rawValue)
                .fetchCount(db)
            vm.batchId = (batch?.state == .open && waiting > 0) ? handle.batchId : nil
            vm.handleId = nil
            try Store.move(db, &vm, .released)
            try Store.log(db, "handle.released", vm: vmId, batch: handle.batchId, handle: handleId,
                          vm.batchId == nil ? "VM returns to the pool after reset" : "VM serves a waiting handle after reset")
            return .reset(vmId: vmId)
        }
    }

    /// No new locks; waiting handles end cancelled; prepared VMs not yet locked go back to the
    /// pool through a reset. Locked VMs stay with their handles. Returns the VMs to reset.
    package func cancelBatch(batchId: Int64) async throws -> [Int64] {
        try await pool.write { db in
            guard var batch = try BatchRecord.fetchOne(db, key: batchId) else {
                throw StoreError.batchNotFound(batchId)
            }
            return try Store.cancel(db, &batch)
        }
    }

    /// The cancel of `batch` inside the caller's transaction (the API's, or its expiry).
    static func cancel(_ db: Database, _ batch: inout BatchRecord, reason: String = "batch cancelled") throws -> [Int64] {
        guard batch.state == .open, let batchId = batch.id else { return [] }
        batch.state = .cancelled
        try batch.update(db)
        let now = Date()
        for var handle in try HandleRecord.filter(Column("batchId") == batchId && Column("state") == HandleState.waiting.rawValue).fetchAll(db) {
            handle.endedAt = now
            handle.reason = reason
            try Store.move(db, &handle, .cancelled)
        }
        var toReset: [Int64] = []
        for var vm in try VMRecord.filter(Column("batchId") == batchId && Column("state") == VMState.prepared.rawValue).fetchAll(db) {
            vm.batchId = nil
            try Store.move(db, &vm, .batchCancelled)
            toReset.append(vm.id!)
        }
        try Store.log(db, "batch.cancelled", batch: batchId, "\(toReset.count) prepared VM(s) return to the pool")
        return toReset
    }

    // MARK: - VM lifecycle

    /// Reserves a new VM row; its domain name derives from its id, so a crash between this and
    /// the domain's creation can never produce a second domain for it.
    package func insertPendingVM(domainPrefix: String) async throws -> VMRecord {
        try await pool.write { db in
            let now = Date()
            var vm = VMRecord(
                id: nil, domainName: "\(domainPrefix)-pending-\(UUID().uuidString)", state: .pending,
                batchId: nil, handleId: nil, ip: nil, agentVersion: nil, homepage: nil,
                createdAt: now, stateSince: now, idleSince: nil, lastError: nil)
            try vm.insert(db)
            vm.domainName = "\(domainPrefix)-vm\(vm.id!)"
            try vm.update(db)
            try Store.log(db, "vm.pending", vm: vm.id, "domain \(vm.domainName)")
            return vm
        }
    }

    /// Applies `event` if it is legal in the VM's current state; false (and nothing written)
    /// otherwise, e.g. a boot that ends after the VM failed.
    @discardableResult
    package func transition(vm id: Int64, _ event: VMEvent) async throws -> Bool {
        try await pool.write { db in
            guard var vm = try VMRecord.fetchOne(db, key: id), vm.state.apply(event) != nil else { return false }
            try Store.move(db, &vm, event)
            return true
        }
    }

    package enum HelloOutcome: Equatable { case becameIdle, updated, unknownVM }

    /// The agent said hello: a booting (or pending) VM becomes idle; any other live VM just updates its data.
    package func agentHello(vm id: Int64, ip: String?, agentVersion: String?) async throws -> HelloOutcome {
        try await pool.write { db in
            guard var vm = try VMRecord.fetchOne(db, key: id), vm.state.isLive else { return .unknownVM }
            vm.ip = ip
            vm.agentVersion = agentVersion
            if vm.state.apply(.hello) != nil {
                vm.batchId = nil
                try Store.move(db, &vm, .hello)
                return .becameIdle
            }
            try vm.update(db)
            return .updated
        }
    }

    /// What a VM must be configured with for its batch.
    package struct BrowserSetup: Equatable, Sendable {
        package var homepage: String
        package var cookies: [Cookie]
        package var browser: BrowserWindow

        package init(_ batch: BatchRecord) {
            homepage = batch.homepage
            cookies = batch.cookies ?? []
            browser = batch.browser
        }
    }

    /// Hands idle pool VMs to open batches below their size, oldest batch first. Returns each
    /// VM with the setup it must now be configured with. VMs in `busy` are left alone: a VM whose
    /// reset just made it idle is still finishing that work, and its new work could not start.
    package func grantIdleVMs(excluding busy: Set<Int64> = []) async throws -> [(vmId: Int64, setup: BrowserSetup)] {
        try await pool.write { db in
            var idle = try VMRecord
                .filter(Column("state") == VMState.idle.rawValue && Column("batchId") == nil && !busy.contains(Column("id")))
                .order(Column("id")).fetchAll(db)
            var grants: [(Int64, BrowserSetup)] = []
            let batches = try BatchRecord.filter(Column("state") == BatchState.open.rawValue && Column("granted") < Column("size"))
                .order(Column("id")).fetchAll(db)
            for var batch in batches {
                while batch.granted < batch.size, !idle.isEmpty {
                    var vm = idle.removeFirst()
                    vm.batchId = batch.id
                    vm.homepage = nil
                    try Store.move(db, &vm, .granted)
                    batch.granted += 1
                    grants.append((vm.id!, BrowserSetup(batch)))
                }
                try batch.update(db)
            }
            return grants
        }
    }

    package enum ConfiguredOutcome: Equatable { case prepared, mustReset, ignored }

    /// The agent applied the batch's homepage. If the batch was cancelled meanwhile, the VM goes
    /// back to the pool through a reset.
    /// `assigned`: the waiting handle the VM went to, if any.
    /// The agent applied the batch's setup; `loadError` says why its homepage did not load (the
    /// worker still gets the browser, showing what the site showed).
    package func configured(vm id: Int64, homepage: String?, loadError: String? = nil) async throws -> (outcome: ConfiguredOutcome, assigned: [HandleRecord]) {
        try await pool.write { db in
            guard var vm = try VMRecord.fetchOne(db, key: id), vm.state == .preparing else { return (.ignored, []) }
            vm.homepage = homepage
            vm.homepageError = loadError
            vm.homepageAt = Date()
            if let loadError {
                try Store.log(db, "vm.homepage_failed", vm: id, batch: vm.batchId, "\(homepage ?? "the homepage") did not load: \(loadError)")
            }
            let batch = try vm.batchId.flatMap { try BatchRecord.fetchOne(db, key: $0) }
            guard let batch, batch.state == .open else {
                vm.batchId = nil
                try Store.move(db, &vm, .batchCancelled)
                return (.mustReset, [])
            }
            try Store.move(db, &vm, .configured)
            return (.prepared, try Store.assignWaiting(db, batchId: batch.id!))
        }
    }

    package enum ResetOutcome: Equatable {
        case ignored
        case idle
        /// Serve the batch's waiting handles: configure with this setup.
        case configure(BrowserSetup)
    }

    package func resetDone(vm id: Int64) async throws -> ResetOutcome {
        try await pool.write { db in
            guard var vm = try VMRecord.fetchOne(db, key: id), vm.state == .resetting else { return .ignored }
            vm.homepage = nil
            vm.homepageError = nil
            vm.homepageAt = nil
            // A clean slate starts a new session: later pages belong to the next user.
            vm.session += 1
            if let batchId = vm.batchId, let batch = try BatchRecord.fetchOne(db, key: batchId), batch.state == .open {
                try Store.move(db, &vm, .resetForBatch)
                return .configure(BrowserSetup(batch))
            }
            vm.batchId = nil
            try Store.move(db, &vm, .resetDone)
            return .idle
        }
    }

    /// The VM is unusable (its domain died, its agent failed). A handle holding it is lost.
    package func markFailed(vm id: Int64, reason: String) async throws -> Bool {
        try await pool.write { db in
            guard var vm = try VMRecord.fetchOne(db, key: id), vm.state.isLive else { return false }
            if var handle = try HandleRecord
                .filter(Column("vmId") == id && Column("state") == HandleState.assigned.rawValue).fetchOne(db) {
                handle.endedAt = Date()
                handle.reason = "VM \(id) failed: \(reason)"
                try Store.move(db, &handle, .lost)
                try Store.log(db, "handle.lost", vm: id, batch: handle.batchId, handle: handle.id, reason)
            }
            if let jobId = vm.jobId, var job = try JobRecord.fetchOne(db, key: jobId), let attempt = try Store.runningAttempt(db, job: jobId) {
                try Store.endAttempt(db, &job, attempt, .vmLost, "VM \(id) failed: \(reason)")
            }
            // A VM granted to a batch but not yet holding a lock (preparing, prepared): the
            // batch is owed one again, so a waiting lock gets a replacement instead of waiting
            // for good. A locked VM's grant was used: its handle is lost, as before.
            if let batchId = vm.batchId, vm.handleId == nil {
                try db.execute(sql: "UPDATE batch SET granted = MAX(granted - 1, 0) WHERE id = ? AND state = 'open'", arguments: [batchId])
            }
            vm.jobId = nil
            vm.lastError = reason
            vm.handleId = nil
            try Store.move(db, &vm, .failed)
            return true
        }
    }

    // MARK: - Shared steps inside a transaction

    /// The only write of a VM's state: applies `event` (throws `IllegalVMTransition`, and the
    /// transaction rolls back, when the table has no such edge), keeps the idle clock and
    /// appends the event.
    package static func move(_ db: Database, _ vm: inout VMRecord, _ event: VMEvent) throws {
        let from = vm.state
        guard let state = from.apply(event) else { throw IllegalVMTransition(vmId: vm.id, state: from, event: event) }
        vm.state = state
        vm.stateSince = Date()
        vm.idleSince = (state == .idle && vm.batchId == nil) ? vm.stateSince : nil
        try vm.update(db)
        let detail = vm.lastError.map { state == .failed ? ": \($0)" : "" } ?? ""
        try log(db, "vm.\(state.rawValue)", vm: vm.id, batch: vm.batchId, handle: vm.handleId,
                "\(from.rawValue) -> \(state.rawValue)\(detail)")
    }

    /// The only write of a handle's state after its insert: applies `event` (throws
    /// `IllegalHandleTransition`, and the transaction rolls back, when the table has no such
    /// edge). Events are logged by the callers.
    package static func move(_ db: Database, _ handle: inout HandleRecord, _ event: HandleEvent) throws {
        guard let state = handle.state.apply(event) else {
            throw IllegalHandleTransition(handleId: handle.id, state: handle.state, event: event)
        }
        handle.state = state
        try handle.update(db)
    }

    /// Pairs the batch's waiting handles (FIFO) with its prepared VMs. Reads the (short) list
    /// of prepared VMs first, so that a lock on a batch with a long queue stays cheap.
    /// Returns the handles it assigned (their wait is a metric the caller records after the commit).
    @discardableResult
    package static func assignWaiting(_ db: Database, batchId: Int64) throws -> [HandleRecord] {
        let prepared = try VMRecord
            .filter(Column("batchId") == batchId && Column("state") == VMState.prepared.rawValue)
            .order(Column("stateSince"), Column("id")).fetchAll(db)
        guard !prepared.isEmpty else { return [] }
        let waiting = try HandleRecord
            .filter(Column("batchId") == batchId && Column("state") == HandleState.waiting.rawValue)
            .order(Column("id")).limit(prepared.count).fetchAll(db)
        var assigned: [HandleRecord] = []
        for (var handle, var vm) in zip(waiting, prepared) {
            handle.vmId = vm.id
            handle.vmSession = vm.session
            handle.assignedAt = Date()
            try move(db, &handle, .assigned)
            vm.handleId = handle.id
            try move(db, &vm, .locked)
            assigned.append(handle)
        }
        return assigned
    }
}
