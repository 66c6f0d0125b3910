import CLibvirt

/// `virDomainState`, as reported by `virDomainGetState`.
public enum DomainState: Sendable, Equatable {
    case noState, running, blocked, paused, shutdown, shutoff, crashed, pmSuspended
    case unknown(Int32)

    init(raw: Int32) {
        switch raw {
        case Int32(VIR_DOMAIN_NOSTATE.rawValue): self = .noState
        case Int32(VIR_DOMAIN_RUNNING.rawValue): self = .running
        case Int32(VIR_DOMAIN_BLOCKED.rawValue): self = .blocked
        case Int32(VIR_DOMAIN_PAUSED.rawValue): self = .paused
        case Int32(VIR_DOMAIN_SHUTDOWN.rawValue): self = .shutdown
        case Int32(VIR_DOMAIN_SHUTOFF.rawValue): self = .shutoff
        case Int32(VIR_DOMAIN_CRASHED.rawValue): self = .crashed
        case Int32(VIR_DOMAIN_PMSUSPENDED.rawValue): self = .pmSuspended
        default: self = .unknown(raw)
        }
    }
}

/// A snapshot of one domain's identity and state.
public struct DomainInfo: Sendable, Equatable {
    public let name: String
    public let uuid: String
    public let state: DomainState
    /// Hypervisor id; nil when the domain is not running.
    public let id: UInt32?
    public let persistent: Bool

    public init(name: String, uuid: String, state: DomainState, id: UInt32?, persistent: Bool) {
        self.name = name
        self.uuid = uuid
        self.state = state
        self.id = id
        self.persistent = persistent
    }
}

/// `virDomainEventType` of a lifecycle event.
public enum DomainLifecycleEvent: Sendable, Equatable {
    case defined, undefined, started, suspended, resumed, stopped, shutdown, pmsuspended, crashed
    case unknown(Int32)

    init(raw: Int32) {
        switch raw {
        case Int32(VIR_DOMAIN_EVENT_DEFINED.rawValue): self = .defined
        case Int32(VIR_DOMAIN_EVENT_UNDEFINED.rawValue): self = .undefined
        case Int32(VIR_DOMAIN_EVENT_STARTED.rawValue): self = .started
        case Int32(VIR_DOMAIN_EVENT_SUSPENDED.rawValue): self = .suspended
        case Int32(VIR_DOMAIN_EVENT_RESUMED.rawValue): self = .resumed
        case Int32(VIR_DOMAIN_EVENT_STOPPED.rawValue): self = .stopped
        case Int32(VIR_DOMAIN_EVENT_SHUTDOWN.rawValue): self = .shutdown
        case Int32(VIR_DOMAIN_EVENT_PMSUSPENDED.rawValue): self = .pmsuspended
        case Int32(VIR_DOMAIN_EVENT_CRASHED.rawValue): self = .crashed
        default: self = .unknown(raw)
        }
    }
}

/// What the client's `events` stream delivers.
public enum LibvirtEvent: Sendable, Equatable {
    /// `detail` is the event-specific `virDomainEvent*DetailType` value.
    case lifecycle(domain: String, uuid: String, event: DomainLifecycleEvent, detail: Int32)
    /// The connection dropped; events may have been missed until `.reconnected`.
    case disconnected(reason: String)
    /// A new connection is up and callbacks are registered again: re-read the truth.
    case reconnected
}
