import Synchronization

/// The open bridge sessions, each under the access grant it was opened with, so that the
/// appliance can close every session whose access has ended.
public final class BridgeSessions<Grant: Hashable & Sendable>: Sendable {
    private struct Entry: Sendable {
        let grant: Grant
        let session: BridgeSession
    }

    private let entries = Mutex<(next: UInt64, open: [UInt64: Entry])>((0, [:]))

    public init() {}

    /// Registers a session; call `close(_:)` when it ends.
    public func open(_ grant: Grant) -> BridgeSession {
        entries.withLock { state in
            state.next += 1
            let session = BridgeSession(id: state.next)
            state.open[state.next] = Entry(grant: grant, session: session)
            return session
        }
    }

    public func close(_ session: BridgeSession) {
        _ = entries.withLock { $0.open.removeValue(forKey: session.id) }
    }

    /// The distinct grants of open sessions.
    public var grants: Set<Grant> {
        entries.withLock { Set($0.open.values.map(\.grant)) }
    }

    public var count: Int { entries.withLock { $0.open.count } }

    /// Revokes (and so ends) every open session whose grant is in `grants`; returns how many.
    @discardableResult
    public func revoke(_ grants: Set<Grant>) -> Int {
        let sessions = entries.withLock { state in state.open.values.filter { grants.contains($0.grant) }.map(\.session) }
        sessions.forEach { $0.revoke() }
        return sessions.count
    }
}

/// One open session's revocation signal.
public final class BridgeSession: Sendable {
    let id: UInt64
    private let signal: AsyncStream<Void>
    private let trigger: AsyncStream<Void>.Continuation

    init(id: UInt64) {
        self.id = id
        (signal, trigger) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func revoke() {
        trigger.yield()
        trigger.finish()
    }

    /// Returns once the session is revoked (or the waiting task is cancelled).
    public func revoked() async {
        for await _ in signal { return }
    }
}
