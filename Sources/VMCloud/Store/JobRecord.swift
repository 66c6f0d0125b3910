import AgentProtocol
import Foundation
import GRDB

enum JobState: String, Codable, Sendable, DatabaseValueConvertible {
    case queued, running, done, failed
}

/// How one try of a job ended.
enum JobOutcome: String, Codable, Sendable, DatabaseValueConvertible {
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

    var countsAsAttempt: Bool { self != .interrupted }
}

/// A capture job (table `job`): load `url` in an idle pool VM and keep its screenshot and MHTML.
struct JobRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "job"
    var id: Int64?
    var clientId: Int64?
    var url: String
    var cookies: [Cookie]?
    /// The capture counts only if its MHTML contains this text.
    var waitForText: String?
    var timeoutMs: Int64
    var maxAttempts: Int
    var state: JobState
    /// Tries started that count (interrupted ones are given back).
    var attempts: Int
    /// The VM of the running try.
    var vmId: Int64?
    /// The captured page of the successful try.
    var pageId: Int64?
    var lastError: String?
    var createdAt: Date
    var finishedAt: Date?

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One try of a job on one VM (table `job_attempt`).
struct JobAttemptRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "job_attempt"
    var id: Int64?
    var jobId: Int64
    var vmId: Int64
    var vmSession: Int64
    var startedAt: Date
    var endedAt: Date?
    var outcome: JobOutcome?
    var reason: String?

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
