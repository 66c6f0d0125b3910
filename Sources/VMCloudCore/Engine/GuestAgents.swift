import AgentProtocol
import Logging
import NIOCore

/// Every guest agent session of the appliance, pool VMs' and generic VMs' alike, keyed by whose
/// guest it is: the one place that opens, finds and closes them, and closes them all when the
/// server stops (a session left open would keep reconnecting to a socket nobody serves).
package actor GuestAgents {
    private let group: EventLoopGroup
    private let logger: Logger
    private var sessions: [DomainOwner: AgentSession] = [:]

    package init(group: EventLoopGroup, logger: Logger) {
        self.group = group
        self.logger = logger
    }

    /// The session of `owner`'s guest; made (not yet connecting) if there was none.
    package func session(
        _ owner: DomainOwner, socketPath: String,
        onMessage: @escaping @Sendable (AgentMessage) async -> Void, onReject: @escaping @Sendable (String) async -> Void
    ) -> AgentSession {
        if let session = sessions[owner] { return session }
        let session = AgentSession(
            vmId: owner.id, socketPath: socketPath, group: group, logger: logger, onMessage: onMessage, onReject: onReject)
        sessions[owner] = session
        return session
    }

    /// The session of `owner`'s guest, connecting (and reconnecting while it is open).
    @discardableResult
    package func attach(
        _ owner: DomainOwner, socketPath: String,
        onMessage: @escaping @Sendable (AgentMessage) async -> Void, onReject: @escaping @Sendable (String) async -> Void
    ) async -> AgentSession {
        let session = session(owner, socketPath: socketPath, onMessage: onMessage, onReject: onReject)
        await session.start()
        return session
    }

    /// The guests that have a session (connected or reconnecting).
    package func openOwners() -> Set<DomainOwner> { Set(sessions.keys) }

    /// Ends `owner`'s session: its pending requests fail.
    package func close(_ owner: DomainOwner) async {
        await sessions.removeValue(forKey: owner)?.close()
    }

    package func closeAll() async {
        let all = sessions.values
        sessions = [:]
        for session in all { await session.close() }
    }
}

extension DomainOwner {
    /// The row id: a pool VM's or a generic VM's.
    package var id: Int64 {
        switch self {
        case .pool(let vm): vm
        case .machine(let machine): machine
        }
    }
}
