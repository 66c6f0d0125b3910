import AgentProtocol
import Foundation
import GRDB

/// The job queue's transitions, each one transaction: a job is claimed by exactly one idle VM,
/// ends each try exactly once, and completes at most once (the capture that completes it and the
/// job's `done` are written together).
extension Store {
    package struct JobClaim: Sendable, Equatable {
        package let vmId: Int64
        package let job: JobRecord
        package let attemptId: Int64

        package init(vmId: Int64, job: JobRecord, attemptId: Int64) {
            self.vmId = vmId
            self.job = job
            self.attemptId = attemptId
        }
    }

    package func createJob(client: Int64?, url: String, cookies: [Cookie], waitForText: String?, timeoutMs: Int64, maxAttempts: Int) async throws -> JobRecord {
        try await pool.write { db in
            var job = JobRecord(
                id: nil, clientId: client, url: url, cookies: cookies.isEmpty ? nil : cookies, waitForText: waitForText,
                timeoutMs: timeoutMs, maxAttempts: maxAttempts, state: .queued, attempts: 0, vmId: nil, pageId: nil,
                lastError: nil, createdAt: Date(), finishedAt: nil)
            try job.insert(db)
            try Store.logJob(db, "job.queued", job: job.id!, "\(url.prefix(200))")
            return job
        }
    }

    /// Pairs queued jobs (oldest first) with idle pool VMs. A retry prefers a VM that has not
    /// tried the job yet and never goes back to the VM of its last failed try. VMs in `busy` are
    /// left alone (see `grantIdleVMs`).
    package func claimJobs(excluding busy: Set<Int64> = []) async throws -> [JobClaim] {
        try await pool.write { db in
            var idle = try VMRecord
                .filter(Column("state") == VMState.idle.rawValue && Column("batchId") == nil && Column("jobId") == nil
                        && !busy.contains(Column("id")))
                .order(Column("id")).fetchAll(db)
            guard !idle.isEmpty else { return [] }
            var claims: [JobClaim] = []
            for var job in try JobRecord.filter(Column("state") == JobState.queued.rawValue).order(Column("id")).fetchAll(db) {
                guard !idle.isEmpty else { break }
                let tried = try JobAttemptRecord.filter(Column("jobId") == job.id!).order(Column("id")).fetchAll(db)
                let triedVMs = Set(tried.map(\.vmId))
                let lastFailed = tried.last(where: { $0.outcome != .interrupted })?.vmId
                guard let index = idle.firstIndex(where: { !triedVMs.contains($0.id!) })
                        ?? idle.firstIndex(where: { $0.id != lastFailed }) else { continue }
                var vm = idle.remove(at: index)
                var attempt = JobAttemptRecord(id: nil, jobId: job.id!, vmId: vm.id!, vmSession: vm.session, startedAt: Date())
                try attempt.insert(db)
                job.state = .running
                job.attempts += 1
                job.vmId = vm.id
                try job.update(db)
                vm.jobId = job.id
                vm.homepage = nil
                try Store.move(db, &vm, .jobClaimed)
                try Store.logJob(db, "job.started", job: job.id!, vm: vm.id, "try \(job.attempts) of \(job.maxAttempts) on VM \(vm.id!)")
                claims.append(JobClaim(vmId: vm.id!, job: job, attemptId: attempt.id!))
            }
            return claims
        }
    }

    package enum JobPageOutcome: Equatable {
        /// Not a job's capture: stored as an ordinary page.
        case notAJob
        /// The job is done (or its try failed the wait condition); the VM must be reset.
        case ended(vmId: Int64)
    }

    /// Stores a captured page and, when it is the capture of the job its VM runs, ends the try
    /// in the same transaction: done, or wait_failed when `waitMet` is false.
    package func insertCapture(_ page: PageRecord, waitMet: Bool) async throws -> (PageRecord, JobPageOutcome) {
        try await pool.write { db in
            let page = try Store.insertPage(db, page)
            // A blank page is the browser between users, never the capture of a job's URL.
            guard page.url != "about:blank", var vm = try VMRecord.fetchOne(db, key: page.vmId), vm.state == .working, let jobId = vm.jobId,
                  var job = try JobRecord.fetchOne(db, key: jobId), job.state == .running, job.vmId == vm.id,
                  let attempt = try Store.runningAttempt(db, job: jobId), attempt.vmSession == page.vmSession else {
                return (page, .notAJob)
            }
            if waitMet {
                job.pageId = page.id
                try Store.endAttempt(db, &job, attempt, .done, "captured \(page.url.prefix(200))")
            } else {
                try Store.endAttempt(db, &job, attempt, .waitFailed, "the page did not contain the text to wait for")
            }
            try Store.releaseJobVM(db, &vm)
            return (page, .ended(vmId: vm.id!))
        }
    }

    /// Ends the given try if it still runs (timeout, or an error from the agent); returns the
    /// VM to reset.
    package func endJobAttempt(_ attemptId: Int64, _ outcome: JobOutcome, reason: String) async throws -> Int64? {
        try await pool.write { db in
            guard let attempt = try JobAttemptRecord.fetchOne(db, key: attemptId), attempt.outcome == nil,
                  var job = try JobRecord.fetchOne(db, key: attempt.jobId) else { return nil }
            try Store.endAttempt(db, &job, attempt, outcome, reason)
            guard var vm = try VMRecord.fetchOne(db, key: attempt.vmId), vm.state == .working, vm.jobId == job.id else { return nil }
            try Store.releaseJobVM(db, &vm)
            return vm.id
        }
    }

    /// Jobs whose try was under way when the appliance stopped: given back to the queue.
    package func interruptedJob(vm id: Int64) async throws -> Bool {
        try await pool.write { db in
            guard var vm = try VMRecord.fetchOne(db, key: id), vm.state == .working else { return false }
            if let jobId = vm.jobId, var job = try JobRecord.fetchOne(db, key: jobId), let attempt = try Store.runningAttempt(db, job: jobId) {
                try Store.endAttempt(db, &job, attempt, .interrupted, "the appliance restarted during the try")
            }
            try Store.releaseJobVM(db, &vm)
            return true
        }
    }

    package func job(_ id: Int64) async throws -> JobRecord? {
        try await pool.read { db in try JobRecord.fetchOne(db, key: id) }
    }

    package func jobs(client: Int64?, state: JobState?, limit: Int) async throws -> [JobRecord] {
        try await pool.read { db in
            var request = JobRecord.order(Column("id").desc).limit(limit)
            if let client { request = request.filter(Column("clientId") == client) }
            if let state { request = request.filter(Column("state") == state.rawValue) }
            return try request.fetchAll(db)
        }
    }

    package func attempts(job: Int64) async throws -> [JobAttemptRecord] {
        try await pool.read { db in try JobAttemptRecord.filter(Column("jobId") == job).order(Column("id")).fetchAll(db) }
    }

    /// Failed tries, newest first (the error list), of one client's jobs or all.
    package func jobErrors(client: Int64?, limit: Int) async throws -> [JobAttemptRecord] {
        try await pool.read { db in
            var sql = "SELECT job_attempt.* FROM job_attempt JOIN job ON job.id = job_attempt.jobId WHERE job_attempt.outcome NOT IN ('done')"
            var arguments: StatementArguments = []
            if let client { sql += " AND job.clientId = ?"; arguments += [client] }
            sql += " ORDER BY job_attempt.id DESC LIMIT ?"
            arguments += [limit]
            return try JobAttemptRecord.fetchAll(db, sql: sql, arguments: arguments)
        }
    }

    package struct VMJobStats: Sendable, Equatable, Codable {
        package var vm: Int64
        package var tries: Int
        package var done: Int
        package var failed: Int

        package init(vm: Int64, tries: Int, done: Int, failed: Int) {
            self.vm = vm
            self.tries = tries
            self.done = done
            self.failed = failed
        }
    }

    /// Tries per VM and how they ended.
    package func jobStatsPerVM() async throws -> [VMJobStats] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT vmId, COUNT(*) AS tries, SUM(outcome = 'done') AS done,
                       SUM(outcome IS NOT NULL AND outcome NOT IN ('done', 'interrupted')) AS failed
                FROM job_attempt GROUP BY vmId ORDER BY vmId
                """).map { VMJobStats(vm: $0["vmId"], tries: $0["tries"], done: $0["done"] ?? 0, failed: $0["failed"] ?? 0) }
        }
    }

    // MARK: - Inside transactions

    package static func runningAttempt(_ db: Database, job: Int64) throws -> JobAttemptRecord? {
        try JobAttemptRecord.filter(Column("jobId") == job && Column("outcome") == nil).fetchOne(db)
    }

    /// Closes a try; the job is done, queued again, or failed once its tries are used up.
    package static func endAttempt(_ db: Database, _ job: inout JobRecord, _ attempt: JobAttemptRecord, _ outcome: JobOutcome, _ reason: String) throws {
        var attempt = attempt
        attempt.endedAt = Date()
        attempt.outcome = outcome
        attempt.reason = String(reason.prefix(1024))
        try attempt.update(db)
        job.vmId = nil
        if outcome == .done {
            job.state = .done
            job.finishedAt = Date()
            try job.update(db)
            try logJob(db, "job.done", job: job.id!, vm: attempt.vmId, reason)
            return
        }
        if !outcome.countsAsAttempt { job.attempts -= 1 }
        job.lastError = "\(outcome.rawValue): \(reason.prefix(1024))"
        if job.attempts >= job.maxAttempts {
            job.state = .failed
            job.finishedAt = Date()
            try job.update(db)
            try logJob(db, "job.failed", job: job.id!, vm: attempt.vmId, "\(outcome.rawValue) after \(job.attempts) tries: \(reason)")
        } else {
            job.state = .queued
            try job.update(db)
            try logJob(db, "job.retry", job: job.id!, vm: attempt.vmId, "\(outcome.rawValue): \(reason); queued again")
        }
    }

    /// A VM whose job try ended goes through a reset (cookies and history of the job must not
    /// reach the next user) and then back to the pool.
    package static func releaseJobVM(_ db: Database, _ vm: inout VMRecord) throws {
        vm.jobId = nil
        try move(db, &vm, .jobEnded)
    }

    package static func logJob(_ db: Database, _ kind: String, job: Int64, vm: Int64? = nil, _ message: String) throws {
        var event = EventRecord(id: nil, at: Date(), kind: kind, vmId: vm, batchId: nil, handleId: nil, message: message, jobId: job)
        try event.insert(db)
    }
}
