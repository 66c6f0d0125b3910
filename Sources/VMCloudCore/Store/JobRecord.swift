import AgentProtocol
import Foundation
import GRDB

package enum JobState: String, Codable, Sendable, DatabaseValueConvertible {
    case queued, running, done, failed
}

/// How one try of a job ended.
package enum JobOutcome: String, Codable, Sendable, DatabaseValueConvertible {
    case done
    /// The agent or browser reported an error.
    case error
    /// No capture within the job's timeout.
    case timeout
    /// The VM failed (crashed, killed, agent gone) during the try.
    case vmLost = "vm_lost"
    /// The page loaded but did not contain the job's waitForText.
    case waitFailed = "wait_failed"
    /// The appliance restarted during the try; not counted against maxAttempts.
    case interrupted

    package var countsAsAttempt: Bool { self != .interrupted }
}

/// A capture job (table `job`): load `url` in an idle pool VM and keep its screenshot and MHTML.
package struct JobRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "job"
    package var id: Int64?
    package var clientId: Int64?
    package var url: String
    package var cookies: [Cookie]?
    /// The capture counts only if its MHTML contains this text.
    package var waitForText: String?
    package var timeoutMs: Int64
    package var maxAttempts: Int
    package var state: JobState
    /// Tries started that count (interrupted ones are given back).
    package var attempts: Int
    /// The VM of the running try.
    package var vmId: Int64?
    /// The captured page of the successful try.
    package var pageId: Int64?
    package var lastError: String?
    package var createdAt: Date
    package var finishedAt: Date?

    package init(id: Int64? = nil, clientId: Int64? = nil, url: String, cookies: [Cookie]? = nil, waitForText: String? = nil, timeoutMs: Int64, maxAttempts: Int, state: JobState, attempts: Int, vmId: Int64? = nil, pageId: Int64? = nil, lastError: String? = nil, createdAt: Date, finishedAt: Date? = nil) {
        self.id = id
        self.clientId = clientId
        self.url = url
        self.cookies = cookies
        self.waitForText = waitForText
        self.timeoutMs = timeoutMs
        self.maxAttempts = maxAttempts
        self.state = state
        self.attempts = attempts
        self.vmId = vmId
        self.pageId = pageId
        self.lastError = lastError
        self.createdAt = createdAt
        self.finishedAt = finishedAt
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One try of a job on one VM (table `job_attempt`).
package struct JobAttemptRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "job_attempt"
    package var id: Int64?
    package var jobId: Int64
    package var vmId: Int64
    package var vmSession: Int64
    package var startedAt: Date
    package var endedAt: Date?
    package var outcome: JobOutcome?
    package var reason: String?

    package init(id: Int64? = nil, jobId: Int64, vmId: Int64, vmSession: Int64, startedAt: Date, endedAt: Date? = nil, outcome: JobOutcome? = nil, reason: String? = nil) {
        self.id = id
        self.jobId = jobId
        self.vmId = vmId
        self.vmSession = vmSession
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.outcome = outcome
        self.reason = reason
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
