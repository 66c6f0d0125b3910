/// What the engine does next for one pool VM, decided from its state and whether its domain
/// runs: a pure function, tested as a table (like `MachinePlan`).
/// The state changes themselves are `VMState.apply`'s edges, written by `Store.move`.
package enum PoolVMAction: Equatable, Sendable {
    /// Pending without a domain: create it.
    case boot
    /// Pending while its domain runs (the appliance died between the two): booting, agent attached.
    case adopt
    /// Preparing: apply its batch's homepage and cookies through the agent.
    case configure
    /// Resetting: the agent clears the browser.
    case reset
    /// Working when the appliance started (its wait for the capture died with the old process):
    /// the job goes back to the queue and the VM is reset.
    case interruptedJob
    /// The domain is gone while the VM should have one.
    case fail
    /// Failed: its domain and files are removed.
    case discard
    case destroy
}

package enum PoolVMPlan {
    /// nil: nothing to do. `adopting`: the first pass since the appliance started or libvirt
    /// came back.
    package static func next(_ state: VMState, domainRuns: Bool, adopting: Bool) -> PoolVMAction? {
        switch state {
        case .pending:
            return domainRuns ? .adopt : .boot
        case .booting, .idle, .prepared, .locked:
            return domainRuns ? nil : .fail
        case .preparing:
            return domainRuns ? .configure : .fail
        case .resetting:
            return domainRuns ? .reset : .fail
        case .working:
            guard domainRuns else { return .fail }
            return adopting ? .interruptedJob : nil
        case .failed:
            return .discard
        case .destroying:
            return .destroy
        case .destroyed:
            return nil
        }
    }

    /// Whether the VM's guest agent must be listened to: every live state once the domain runs.
    package static func listens(_ state: VMState, domainRuns: Bool) -> Bool {
        domainRuns && state.isLive && state != .pending
    }
}
