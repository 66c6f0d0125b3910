import AgentProtocol
import Foundation
import GRDB

/// The states a pool VM moves through; its legal edges are `VMState.apply` (VMLifecycle.swift).
/// `destroyed` is terminal and kept for history.
package enum VMState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// `working`: running a capture job (vm.jobId).
    case pending, booting, idle, preparing, prepared, locked, working, resetting, failed, destroying, destroyed

    /// A live VM counts against the pool's min and max.
    package var isLive: Bool {
        switch self {
        case .pending, .booting, .idle, .preparing, .prepared, .locked, .working, .resetting: return true
        case .failed, .destroying, .destroyed: return false
        }
    }
}

/// A handle's legal edges are `HandleState.apply` (HandleLifecycle.swift).
package enum HandleState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// In its batch's FIFO queue.
    case waiting
    case assigned
    case released
    /// The batch was cancelled while the handle waited (or the lock came after the cancel).
    case cancelled
    /// Its VM died while assigned.
    case lost
}

package enum BatchState: String, Codable, Sendable, DatabaseValueConvertible {
    case open, cancelled
}

package struct VMRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "vm"
    package var id: Int64?
    package var domainName: String
    package var state: VMState
    package var batchId: Int64?
    package var handleId: Int64?
    package var ip: String?
    package var agentVersion: String?
    /// The homepage the guest agent reported as applied.
    package var homepage: String?
    package var createdAt: Date
    package var stateSince: Date
    /// Set when the VM became idle in no batch; linger counts from here.
    package var idleSince: Date?
    package var lastError: String?
    /// Incremented by every reset: a new user's session.
    package var session: Int64 = 0
    /// The capture job it runs (state working).
    package var jobId: Int64? = nil
    /// Why this session's homepage did not load (DNS, refused, HTTP status, timeout), nil if it
    /// loaded or no configure answered yet; `homepageAt` is when the agent answered.
    package var homepageError: String? = nil
    package var homepageAt: Date? = nil

    package init(id: Int64? = nil, domainName: String, state: VMState, batchId: Int64? = nil, handleId: Int64? = nil, ip: String? = nil, agentVersion: String? = nil, homepage: String? = nil, createdAt: Date, stateSince: Date, idleSince: Date? = nil, lastError: String? = nil, session: Int64 = 0, jobId: Int64? = nil) {
        self.id = id
        self.domainName = domainName
        self.state = state
        self.batchId = batchId
        self.handleId = handleId
        self.ip = ip
        self.agentVersion = agentVersion
        self.homepage = homepage
        self.createdAt = createdAt
        self.stateSince = stateSince
        self.idleSince = idleSince
        self.lastError = lastError
        self.session = session
        self.jobId = jobId
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// How a batch's browsers show: `full`, Chromium's normal window (address bar, tabs,
/// back/forward, downloads), or `kiosk`, one full-screen page without browser controls.
package enum BrowserWindow: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case full, kiosk
}

package struct BatchRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "batch"
    package var id: Int64?
    package var size: Int
    package var homepage: String
    package var state: BatchState
    /// How many VMs the pool has handed to this batch; the batch asks for more while below size.
    package var granted: Int
    package var createdAt: Date
    /// Cookies every VM of the batch is configured with (stored as JSON).
    package var cookies: [Cookie]?
    /// The client that prepared it; nil: the legacy caller on a trusted network.
    package var clientId: Int64? = nil
    /// The browser's window: Chromium's normal one, or a kiosk.
    package var browser: BrowserWindow = .full
    /// Each handle of the batch is released once not kept alive for this long (nil: never).
    package var leaseSeconds: Int? = nil
    /// When the batch is cancelled by itself (nil: never).
    package var expiresAt: Date? = nil

    package init(id: Int64? = nil, size: Int, homepage: String, state: BatchState, granted: Int, createdAt: Date, cookies: [Cookie]? = nil, clientId: Int64? = nil,
                 leaseSeconds: Int? = nil, expiresAt: Date? = nil) {
        self.id = id
        self.size = size
        self.homepage = homepage
        self.state = state
        self.granted = granted
        self.createdAt = createdAt
        self.cookies = cookies
        self.clientId = clientId
        self.leaseSeconds = leaseSeconds
        self.expiresAt = expiresAt
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

package struct HandleRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "handle"
    package var id: Int64?
    package var batchId: Int64
    package var state: HandleState
    package var vmId: Int64?
    package var createdAt: Date
    package var assignedAt: Date?
    package var endedAt: Date?
    package var reason: String?
    /// The VM's session when this handle got it: its pages are those of that session.
    package var vmSession: Int64?
    /// Its batch's lease when it was locked (nil: none).
    package var leaseSeconds: Int? = nil
    /// When it is released unless kept alive before (set while it waits or is assigned).
    package var leaseExpiresAt: Date? = nil

    package init(id: Int64? = nil, batchId: Int64, state: HandleState, vmId: Int64? = nil, createdAt: Date, assignedAt: Date? = nil, endedAt: Date? = nil, reason: String? = nil, vmSession: Int64? = nil) {
        self.id = id
        self.batchId = batchId
        self.state = state
        self.vmId = vmId
        self.createdAt = createdAt
        self.assignedAt = assignedAt
        self.endedAt = endedAt
        self.reason = reason
        self.vmSession = vmSession
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

package struct EventRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "event"
    package var id: Int64?
    package var at: Date
    package var kind: String
    package var vmId: Int64?
    package var batchId: Int64?
    package var handleId: Int64?
    package var message: String
    /// The generic VM (or viewer VM) the event is about.
    package var machineId: Int64? = nil
    /// The capture job the event is about.
    package var jobId: Int64? = nil

    package init(id: Int64? = nil, at: Date, kind: String, vmId: Int64? = nil, batchId: Int64? = nil, handleId: Int64? = nil, message: String, machineId: Int64? = nil, jobId: Int64? = nil) {
        self.id = id
        self.at = at
        self.kind = kind
        self.vmId = vmId
        self.batchId = batchId
        self.handleId = handleId
        self.message = message
        self.machineId = machineId
        self.jobId = jobId
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// The pool size the application asked for (one row).
package struct PoolSize: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "pool_size"
    package var min: Int
    package var max: Int
    package var lingerMs: Int64

    package init(min: Int, max: Int, lingerMs: Int64) {
        self.min = min
        self.max = max
        self.lingerMs = lingerMs
    }

    package static let initial = PoolSize(min: 0, max: 0, lingerMs: 0)
}

/// One captured top-level page: where it was, and the blobs of its screenshot and MHTML.
package struct PageRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    package static let databaseTableName = "page"
    package var id: Int64?
    package var vmId: Int64
    package var vmSession: Int64
    /// The agent's own page number.
    package var agentPage: Int64
    package var url: String
    package var title: String
    /// When the host stored it.
    package var at: Date
    /// When the guest says it loaded (ms since the epoch; the guest clock is not trusted).
    package var guestTime: Int64
    package var screenshotHash: String?
    package var screenshotBytes: Int
    package var mhtmlHash: String?
    package var mhtmlBytes: Int
    /// The browser tab it loaded in (numbered per session), nil from browsers without tabs.
    package var tab: Int? = nil

    package init(id: Int64? = nil, vmId: Int64, vmSession: Int64, agentPage: Int64, url: String, title: String, at: Date, guestTime: Int64, screenshotHash: String? = nil, screenshotBytes: Int, mhtmlHash: String? = nil, mhtmlBytes: Int) {
        self.id = id
        self.vmId = vmId
        self.vmSession = vmSession
        self.agentPage = agentPage
        self.url = url
        self.title = title
        self.at = at
        self.guestTime = guestTime
        self.screenshotHash = screenshotHash
        self.screenshotBytes = screenshotBytes
        self.mhtmlHash = mhtmlHash
        self.mhtmlBytes = mhtmlBytes
    }

    package mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
