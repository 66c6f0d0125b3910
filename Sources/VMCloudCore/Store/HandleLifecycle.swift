/// What happens to a handle (a lock on a batch). `HandleState.apply` is the one table of its
/// edges, and `Store.move` writes no handle state change it refuses. A handle is born `waiting`,
/// or `cancelled` when its batch already is (`Store.lock`); released, cancelled and lost are final.
package enum HandleEvent: String, Sendable, CaseIterable {
    /// A prepared VM of its batch was paired with it.
    case assigned
    /// Its holder released it (or left the queue).
    case released
    /// Its batch was cancelled while it waited.
    case cancelled
    /// Its VM failed while it held it.
    case lost
}

extension HandleState {
    /// The state `event` leads to, or nil when the event is illegal in this state.
    package func apply(_ event: HandleEvent) -> HandleState? {
        switch (self, event) {
        case (.waiting, .assigned): return .assigned
        case (.waiting, .released), (.assigned, .released): return .released
        case (.waiting, .cancelled): return .cancelled
        case (.assigned, .lost): return .lost
        default: return nil
        }
    }
}

/// A write asked for a handle edge the table does not have: a bug, so the transaction rolls back.
package struct IllegalHandleTransition: Error, Equatable, CustomStringConvertible {
    package let handleId: Int64?
    package let state: HandleState
    package let event: HandleEvent

    package init(handleId: Int64?, state: HandleState, event: HandleEvent) {
        self.handleId = handleId
        self.state = state
        self.event = event
    }

    package var description: String { "handle \(handleId.map(String.init) ?? "?"): no \(event.rawValue) edge from \(state.rawValue)" }
}
