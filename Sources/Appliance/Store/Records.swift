import Foundation
import GRDB

/// The states a pool VM moves through. `destroyed` is terminal and kept for history.
enum VMState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case pending, booting, idle, preparing, prepared, locked, resetting, failed, destroying, destroyed

    /// A live VM counts against the pool's min and max.
    var isLive: Bool {
        switch self {
        case .pending, .booting, .idle, .preparing, .prepared, .locked, .resetting: return true
        case .failed, .destroying, .destroyed: return false
        }
    }

    static let liveStates: [VMState] = allCases.filter(\.isLive)
    /// States whose domain should exist in libvirt.
    static let withDomain: [VMState] = allCases.filter { $0 != .destroyed }
}

enum HandleState: String, Codable, Sendable, DatabaseValueConvertible {
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
