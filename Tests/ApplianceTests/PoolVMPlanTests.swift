import Testing
@testable import VMCloudCore

/// The pool VM's decision table: (state, domain runs, adopting) -> next action. Every state
/// appears; a VM that should have a domain and has none fails, whatever its state.
@Suite struct PoolVMPlanTests {
    @Test(arguments: [
        (VMState.pending, false, false, PoolVMAction?.some(.boot)),
        (.pending, true, false, .adopt),
        (.pending, true, true, .adopt),
        (.booting, true, false, nil),
        (.booting, true, true, nil),
        (.booting, false, false, .fail),
        (.idle, true, true, nil),
        (.idle, false, false, .fail),
        (.preparing, true, false, .configure),
        (.preparing, true, true, .configure),
        (.preparing, false, false, .fail),
        (.prepared, true, false, nil),
        (.prepared, false, false, .fail),
        (.locked, true, false, nil),
        (.locked, true, true, nil),
        (.locked, false, false, .fail),
        (.working, true, false, nil),
        (.working, true, true, .interruptedJob),
        (.working, false, false, .fail),
        (.resetting, true, false, .reset),
        (.resetting, true, true, .reset),
        (.resetting, false, false, .fail),
        (.failed, false, false, .discard),
        (.failed, true, false, .discard),
        (.destroying, true, false, .destroy),
        (.destroying, false, false, .destroy),
        (.destroyed, false, false, nil),
        (.destroyed, false, true, nil),
    ] as [(VMState, Bool, Bool, PoolVMAction?)])
    func decides(state: VMState, domainRuns: Bool, adopting: Bool, expected: PoolVMAction?) {
        #expect(PoolVMPlan.next(state, domainRuns: domainRuns, adopting: adopting) == expected)
    }

    /// Only live states expect a domain: each of them fails without one.
    @Test(arguments: VMState.allCases)
    func aLiveVMWithoutItsDomainFails(state: VMState) {
        let action = PoolVMPlan.next(state, domainRuns: false, adopting: false)
        switch state {
        case .pending: #expect(action == .boot)
        case .failed: #expect(action == .discard)
        case .destroying: #expect(action == .destroy)
        case .destroyed: #expect(action == nil)
        default: #expect(state.isLive && action == .fail, "\(state)")
        }
    }

    /// The engine listens to the agent of every live VM whose domain runs, and to no other.
    @Test(arguments: VMState.allCases)
    func listensToEveryLiveVMWithADomain(state: VMState) {
        #expect(PoolVMPlan.listens(state, domainRuns: true) == (state.isLive && state != .pending))
        #expect(!PoolVMPlan.listens(state, domainRuns: false))
    }
}
