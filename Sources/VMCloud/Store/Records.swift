import AgentProtocol
import Foundation
import GRDB

/// The states a pool VM moves through; its legal edges are `VMState.apply` (VMLifecycle.swift).
/// `destroyed` is terminal and kept for history.
enum VMState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// `working`: running a capture job (vm.jobId).
    case pending, booting, idle, preparing, prepared, locked, working, resetting, failed, destroying, destroyed

    /// A live VM counts against the pool's min and max.
    var isLive: Bool {
        switch self {
        case .pending, .booting, .idle, .preparing, .prepared, .locked, .working, .resetting: return true
        case .failed, .destroying, .destroyed: return false
        }
    }
}

/// A handle's legal edges are `HandleState.apply` (HandleLifecycle.swift).
enum HandleState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// In its batch's FIFO queue.
    case waiting
    case assigned
    case released
    /// The batch was cancelled while the handle waited (or the lock came after the cancel).
    case cancelled
    /// Its VM died while assigned.
    case lost
}

enum BatchState: String, Codable, Sendable, DatabaseValueConvertible {
    case open, cancelled
}

struct VMRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "vm"
    var id: Int64?
    var domainName: String
    var state: VMState
    var batchId: Int64?
    var handleId: Int64?
    var ip: String?
    var agentVersion: String?
    /// The homepage the guest agent reported as applied.
    var homepage: String?
    var createdAt: Date
    var stateSince: Date
    /// Set when the VM became idle in no batch; linger counts from here.
    var idleSince: Date?
    var lastError: String?
    /// Incremented by every reset: a new user's session.
    var session: Int64 = 0
    /// The capture job it runs (state working).
    var jobId: Int64? = nil

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

struct BatchRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "batch"
    var id: Int64?
    var size: Int
    var homepage: String
    var state: BatchState
    /// How many VMs the pool has handed to this batch; the batch asks for more while below size.
    var granted: Int
    var createdAt: Date
    /// Cookies every VM of the batch is configured with (stored as JSON).
    var cookies: [Cookie]?
    /// The client that prepared it; nil: the legacy caller on a trusted network.
    var clientId: Int64? = nil

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

struct HandleRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "handle"
    var id: Int64?
    var batchId: Int64
    var state: HandleState
    var vmId: Int64?
    var createdAt: Date
    var assignedAt: Date?
    var endedAt: Date?
    var reason: String?
    /// The VM's session when this handle got it: its pages are those of that session.
    var vmSession: Int64?

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

struct EventRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "event"
    var id: Int64?
    var at: Date
    var kind: String
    var vmId: Int64?
    var batchId: Int64?
    var handleId: Int64?
    var message: String
    /// The generic VM (or viewer VM) the event is about.
    var machineId: Int64? = nil
    /// The capture job the event is about.
    var jobId: Int64? = nil

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// The pool size the application asked for (one row).
struct PoolSize: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "pool_size"
    var min: Int
    var max: Int
    var lingerMs: Int64

    static let initial = PoolSize(min: 0, max: 0, lingerMs: 0)
}

/// One captured top-level page: where it was, and the blobs of its screenshot and MHTML.
struct PageRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "page"
    var id: Int64?
    var vmId: Int64
    var vmSession: Int64
    /// The agent's own page number.
    var agentPage: Int64
    var url: String
    var title: String
    /// When the host stored it.
    var at: Date
    /// When the guest says it loaded (ms since the epoch; the guest clock is not trusted).
    var guestTime: Int64
    var screenshotHash: String?
    var screenshotBytes: Int
    var mhtmlHash: String?
    var mhtmlBytes: Int

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
