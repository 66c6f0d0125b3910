import AgentProtocol
import Foundation
import Hummingbird
import VMCloudCore

/// `/v1/jobs`: the capture-job queue. An application sees its own jobs; an admin sees all.
struct JobRoutes {
    let pool: Pool

    struct JobBody: Decodable {
        var url: String
        var cookies: [AgentProtocol.Cookie]?
        /// The capture counts only if the page's MHTML contains this text.
        var waitForText: String?
        var timeoutMs: Int64?
        var maxAttempts: Int?
    }

    static let defaultTimeoutMs: Int64 = 30_000
    static let defaultMaxAttempts = 3

    func register(on router: APIRouter) {
        let jobs = router.group("v1/jobs")
        jobs.post(access: .client) { request, context in
            let caller = try context.requireClient()
            let body = try await JSONBody.decode(JobBody.self, from: request)
            let url = try InputValidation.homepage(body.url)
            let cookies = try InputValidation.cookies(body.cookies ?? [])
            if let text = body.waitForText, !(1...1024).contains(text.utf8.count) {
                throw APIError.badRequest("waitForText must be 1 to 1024 bytes")
            }
            let timeout = body.timeoutMs ?? Self.defaultTimeoutMs
            guard (1000...600_000).contains(timeout) else { throw APIError.badRequest("timeoutMs must be 1000 to 600000") }
            let attempts = body.maxAttempts ?? Self.defaultMaxAttempts
            guard (1...10).contains(attempts) else { throw APIError.badRequest("maxAttempts must be 1 to 10") }
            let job = try await pool.store.createJob(
                client: caller.clientId, url: url, cookies: cookies, waitForText: body.waitForText, timeoutMs: timeout, maxAttempts: attempts)
            pool.kick()
            return JSONBody.response(JobView(job, attempts: []), status: .created)
        }
        jobs.get(access: .client) { request, context in
            let caller = try context.requireClient()
            let query = request.uri.queryParameters
            let state = try query.get("state").map { raw in
                guard let state = JobState(rawValue: raw) else { throw APIError.badRequest("state must be queued, running, done or failed") }
                return state
            }
            let limit = try query.get("limit").map { try InputValidation.count($0, "limit", max: 1000) } ?? 200
            var client = caller.isAdmin ? nil : caller.clientId
            if caller.isAdmin, let raw = query.get("client") { client = try InputValidation.id(raw, "client") }
            return JSONBody.response(try await pool.store.jobs(client: client, state: state, limit: limit).map { JobView($0, attempts: nil) })
        }
        // The error list: every failed try with its reason.
        jobs.get("errors", access: .client) { request, context in
            let caller = try context.requireClient()
            let limit = try request.uri.queryParameters.get("limit").map { try InputValidation.count($0, "limit", max: 1000) } ?? 200
            return JSONBody.response(try await pool.store.jobErrors(client: caller.isAdmin ? nil : caller.clientId, limit: limit).map(JobAttemptView.init))
        }
        jobs.get("vms", access: .admin) { _, _ in
            return JSONBody.response(try await pool.store.jobStatsPerVM())
        }
        jobs.get(":id", access: .client) { _, context in
            let id = try InputValidation.id(context.parameters.require("id"), "id")
            guard let job = try await pool.store.job(id) else { throw APIError.notFound("no job \(id)") }
            try context.requireAccess(owner: job.clientId, else: APIError.notFound("no job \(id)"))
            return JSONBody.response(JobView(job, attempts: try await pool.store.attempts(job: id)))
        }
    }
}

struct JobAttemptView: Encodable {
    let job: Int64
    let vm: Int64
    let startedAt: Date
    let endedAt: Date?
    let outcome: String?
    let reason: String?

    init(_ attempt: JobAttemptRecord) {
        job = attempt.jobId
        vm = attempt.vmId
        startedAt = attempt.startedAt
        endedAt = attempt.endedAt
        outcome = attempt.outcome?.rawValue
        reason = attempt.reason
    }
}

struct JobView: Encodable {
    let id: Int64
    let client: Int64?
    let url: String
    let state: String
    let attempts: Int
    let maxAttempts: Int
    let timeoutMs: Int64
    let waitForText: String?
    let vm: Int64?
    let lastError: String?
    let createdAt: Date
    let finishedAt: Date?
    /// The captured page of the successful try, with its screenshot and MHTML links.
    let page: Int64?
    let screenshot: String?
    let mhtml: String?
    /// Every try (in GET /v1/jobs/{id} only).
    let tries: [JobAttemptView]?

    init(_ job: JobRecord, attempts: [JobAttemptRecord]?) {
        id = job.id!
        client = job.clientId
        url = job.url
        state = job.state.rawValue
        self.attempts = job.attempts
        maxAttempts = job.maxAttempts
        timeoutMs = job.timeoutMs
        waitForText = job.waitForText
        vm = job.vmId
        lastError = job.lastError
        createdAt = job.createdAt
        finishedAt = job.finishedAt
        page = job.pageId
        screenshot = job.pageId.map { "/v1/pages/\($0)/screenshot.png" }
        mhtml = job.pageId.map { "/v1/pages/\($0)/page.mhtml" }
        tries = attempts?.map(JobAttemptView.init)
    }
}
