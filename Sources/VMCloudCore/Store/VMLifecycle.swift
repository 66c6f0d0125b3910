/// What happens to a pool VM. Each event is legal from a few states only; `VMState.apply` is
/// the one table of the pool VM's edges, and `Store.move` writes no state change it refuses.
/// A VM row is born `pending` (`Store.insertPendingVM`); `destroyed` is terminal.
package enum VMEvent: String, Sendable, CaseIterable {
    /// Its domain runs (booted, or found running by the engine's adopting pass).
    case domainStarted
    /// Its agent said hello: the guest is up.
    case hello
    /// Granted to an open batch: the agent gets the batch's homepage and cookies.
    case granted
    /// The agent applied the batch's setup.
    case configured
    /// The batch it was granted to is cancelled before a lock took the VM: back to the pool.
    case batchCancelled
    /// A lock (handle) of its batch took it.
    case locked
    /// Its handle was released.
    case released
    /// A capture job claimed it.
    case jobClaimed
    /// Its job's try ended (done, failed, timed out, or interrupted by a restart).
    case jobEnded
    /// The agent finished a reset and no handle of its batch waits: an idle pool VM again.
    case resetDone
    /// The agent finished a reset and its open batch has waiting handles: configure it again.
    case resetForBatch
    /// Unusable: its domain died, its agent failed or timed out.
    case failed
    /// An idle VM the pool no longer needs (above its size, or idle for longer than linger).
    case retired
    /// A failed VM is cleaned up.
    case discarded
    /// Its domain and files are gone.
    case destroyed
}

extension VMState {
    /// The state `event` leads to, or nil when the event is illegal in this state.
    package func apply(_ event: VMEvent) -> VMState? {
        switch (self, event) {
        case (.pending, .domainStarted): return .booting
        // The agent is attached after the pending -> booting write; a pending VM's hello is accepted all the same.
        case (.pending, .hello), (.booting, .hello): return .idle
        case (.idle, .granted): return .preparing
        case (.idle, .jobClaimed): return .working
        case (.idle, .retired): return .destroying
        case (.preparing, .configured): return .prepared
        case (.preparing, .batchCancelled), (.prepared, .batchCancelled): return .resetting
        case (.prepared, .locked): return .locked
        case (.locked, .released): return .resetting
        case (.working, .jobEnded): return .resetting
        case (.resetting, .resetDone): return .idle
        case (.resetting, .resetForBatch): return .preparing
        case (_, .failed): return isLive ? .failed : nil
        case (.failed, .discarded): return .destroying
        case (.destroying, .destroyed): return .destroyed
        default: return nil
        }
    }
}

/// A write asked for an edge the table does not have: a bug, so the transaction rolls back.
package struct IllegalVMTransition: Error, Equatable, CustomStringConvertible {
    package let vmId: Int64?
    package let state: VMState
    package let event: VMEvent

    package init(vmId: Int64?, state: VMState, event: VMEvent) {
        self.vmId = vmId
        self.state = state
        self.event = event
    }

    package var description: String { "VM \(vmId.map(String.init) ?? "?"): no \(event.rawValue) edge from \(state.rawValue)" }
}
