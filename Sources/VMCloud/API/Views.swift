import AgentProtocol
import Foundation
import VMCloudCore

/// The JSON shapes the API returns. Field names are part of the contract (see docs/openapi.yaml).
struct VMView: Encodable, Equatable {
    /// Where a handle's captured pages are listed.
    struct PagesReference: Encodable, Equatable {
        let count: Int
        let list: String
    }

    let id: Int64
    let state: String
    let ip: String?
    let homepage: String?
    let batch: Int64?
    let handle: Int64?
    let domain: String
    let agentVersion: String?
    let createdAt: Date
    let stateSince: Date
    let lastError: String?
    /// How this session's homepage load went, once the agent answered the configure.
    let homepageLoad: HomepageLoad?
    /// Set when the VM is shown for a handle (handle-status).
    var pages: PagesReference?
    /// Set when the VM is shown for a handle (handle-status): its screen in a browser.
    var viewer: ViewerAccess.Links?

    init(_ vm: VMRecord) {
        id = vm.id!
        state = vm.state.rawValue
        ip = vm.ip
        homepage = vm.homepage
        batch = vm.batchId
        handle = vm.handleId
        domain = vm.domainName
        agentVersion = vm.agentVersion
        createdAt = vm.createdAt
        stateSince = vm.stateSince
        lastError = vm.lastError
        homepageLoad = vm.homepageAt.map { HomepageLoad(outcome: vm.homepageError == nil ? "loaded" : "failed", error: vm.homepageError, at: $0) }
    }
}

/// `loaded`, or `failed` with Chromium's reason (`net::ERR_NAME_NOT_RESOLVED`, `HTTP 503`,
/// `timeout: ...`) and when. A site that fails is the worker's business: the VM serves anyway.
struct HomepageLoad: Encodable, Equatable {
    let outcome: String
    let error: String?
    let at: Date
}

/// The seed's handle-status: `{assigned: false}` or `{assigned: true, vmid, vm}`, plus the
/// lease (`leaseSeconds`, `leaseExpiresAt`) of a live handle whose batch has one.
struct HandleStatusView: Encodable {
    let assigned: Bool
    let vmid: Int64?
    let vm: VMView?
    var leaseSeconds: Int? = nil
    var leaseExpiresAt: Date? = nil

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(assigned, forKey: .assigned)
        if assigned {
            try container.encode(vmid, forKey: .vmid)
            try container.encode(vm, forKey: .vm)
        }
        try container.encodeIfPresent(leaseSeconds, forKey: .leaseSeconds)
        try container.encodeIfPresent(leaseExpiresAt, forKey: .leaseExpiresAt)
    }

    enum CodingKeys: String, CodingKey { case assigned, vmid, vm, leaseSeconds, leaseExpiresAt }

    /// The lease fields of a handle that waits or is assigned (an ended one has none left).
    mutating func showLease(of handle: HandleRecord) {
        guard handle.state == .waiting || handle.state == .assigned else { return }
        leaseSeconds = handle.leaseSeconds
        leaseExpiresAt = handle.leaseExpiresAt
    }
}

struct HandleView: Encodable {
    let id: Int64
    let batch: Int64
    let state: String
    let vmid: Int64?
    let vm: VMView?
    let createdAt: Date
    let assignedAt: Date?
    let endedAt: Date?
    let reason: String?
    /// Its batch's lease, and when it ends (or ended) unless kept alive.
    let leaseSeconds: Int?
    let leaseExpiresAt: Date?

    init(_ handle: HandleRecord, vm: VMRecord?) {
        id = handle.id!
        batch = handle.batchId
        state = handle.state.rawValue
        vmid = handle.state == .assigned ? handle.vmId : nil
        self.vm = handle.state == .assigned ? vm.map(VMView.init) : nil
        createdAt = handle.createdAt
        assignedAt = handle.assignedAt
        endedAt = handle.endedAt
        reason = handle.reason
        leaseSeconds = handle.leaseSeconds
        leaseExpiresAt = handle.leaseExpiresAt
    }
}

struct BatchView: Encodable {
    let id: Int64
    let size: Int
    let homepage: String
    let state: String
    let granted: Int
    let createdAt: Date
    let cookies: [Cookie]?
    /// `full` (Chromium's normal window) or `kiosk`.
    let browser: String
    let leaseSeconds: Int?
    let expiresAt: Date?
    let handles: [HandleView]?

    init(_ batch: BatchRecord, handles: [HandleView]? = nil) {
        id = batch.id!
        size = batch.size
        homepage = batch.homepage
        state = batch.state.rawValue
        granted = batch.granted
        createdAt = batch.createdAt
        cookies = batch.cookies
        browser = batch.browser.rawValue
        leaseSeconds = batch.leaseSeconds
        expiresAt = batch.expiresAt
        self.handles = handles
    }
}

struct PoolView: Encodable {
    /// This appliance's id; its domains are named `vmcloud-<instance>-vm<id>`.
    let instance: String
    let min: Int
    let max: Int
    let lingerMs: Int64
    /// Live VMs per state.
    let vms: [String: Int]
    /// VM faults in a row and boot failures in a row; while `bootsPausedUntil` is set, no new
    /// VM boots (a fault every new VM meets waits instead of looping).
    let faults: Int
    let bootFailures: Int
    let bootsPausedUntil: Date?
}

struct EventView: Encodable {
    let id: Int64
    let at: Date
    let kind: String
    let vm: Int64?
    let batch: Int64?
    let handle: Int64?
    let machine: Int64?
    let message: String

    init(_ event: EventRecord) {
        id = event.id!
        at = event.at
        kind = event.kind
        vm = event.vmId
        batch = event.batchId
        handle = event.handleId
        machine = event.machineId
        message = event.message
    }
}

struct PoolSizeBody: Decodable {
    let min: Int
    let max: Int
    let lingerMs: Int64
}

struct BatchBody: Decodable {
    let size: Int
    let homepage: String
    let cookies: [Cookie]?
    /// `full` (default) or `kiosk`.
    let browser: String?
    /// Seconds a handle lives without a poll or keepalive.
    let leaseSeconds: Int?
    /// ISO 8601: when the batch is cancelled by itself.
    let expiresAt: String?
}

struct NavigateBody: Decodable {
    let url: String
}

/// What a guest agent reports it has applied (GET /v1/vms/{id}/agent).
struct AgentStateView: Encodable {
    let homepage: String?
    let ip: String?
    let history: [String]?
    let cookies: [Cookie]?
    /// Input the guest kernel received since its agent started (what a VNC control session
    /// types and points; a view session adds nothing).
    let keyEvents: UInt64?
    let pointerEvents: UInt64?
    /// The browser's open tabs and windows (Chromium).
    let tabs: Int?
}
