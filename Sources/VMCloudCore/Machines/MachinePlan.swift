import Libvirt

/// What the reconciler does next for one generic VM, decided from its row (desired and status)
/// and the real state of its domain alone: a pure function, tested without libvirt.
package enum MachineAction: Equatable, Sendable {
    case start
    /// The domain runs although the row still says starting (a restart after a crash of the
    /// appliance): take it over.
    case adopt
    /// The domain is gone while it should run: record the crash and apply the crash policy.
    case crashed
    case suspend
    case resume
    /// The status says suspended but the domain runs, or the reverse: correct the row.
    case correct(MachineStatus)
    /// Power off (gracefully first), then save or discard the disks.
    case halt
    /// Copy the disks to their save targets (3 tries), then `stopped` or `failed to save`.
    case save
    case destroy
    /// Wanted running again after a halt: back to starting on fresh disks.
    case restartFromStopped
}

package enum MachinePlan {
    /// What the decision needs of a machine's row: a pass reads only this for every VM and the
    /// whole record only for those that need an action.
    package struct Row: Sendable, Equatable, Decodable {
        package var id: Int64
        package var domainName: String
        package var desired: MachineDesired
        package var status: MachineStatus
        package var agentSeen: Bool
        package var runAgent: Bool

        package init(id: Int64, domainName: String, desired: MachineDesired, status: MachineStatus, agentSeen: Bool, runAgent: Bool) {
            self.id = id
            self.domainName = domainName
            self.desired = desired
            self.status = status
            self.agentSeen = agentSeen
            self.runAgent = runAgent
        }
    }

    package static func next(_ machine: MachineRecord, domain: DomainState?) -> MachineAction? {
        next(Row(id: machine.id ?? 0, domainName: machine.domainName, desired: machine.desired, status: machine.status,
                 agentSeen: machine.agentSeen, runAgent: machine.spec.runAgent), domain: domain)
    }

    /// nil: nothing to do. `domain` is nil when libvirt has no such domain.
    package static func next(_ machine: Row, domain: DomainState?) -> MachineAction? {
        let exists = domain.map { $0 != .shutoff && $0 != .crashed } ?? false
        let paused = domain == .paused || domain == .pmSuspended
        switch machine.desired {
        case .destroyed:
            return machine.status == .destroyed ? nil : .destroy
        case .running, .suspended:
            switch machine.status {
            case .starting: return exists ? .adopt : .start
            case .failedToStart, .destroyed: return nil
            case .installing, .running, .suspended:
                guard exists else { return .crashed }
                if machine.desired == .suspended && !paused { return .suspend }
                if machine.desired == .running && paused { return .resume }
                if paused && machine.status != .suspended { return .correct(.suspended) }
                if !paused && machine.status == .suspended {
                    return .correct(machine.agentSeen || !machine.runAgent ? .running : .installing)
                }
                return nil
            case .saving: return .save
            case .failedToSave, .stopped: return .restartFromStopped
            }
        case .stopped:
            switch machine.status {
            case .starting, .failedToStart, .installing, .running, .suspended: return .halt
            case .saving: return .save
            case .failedToSave, .stopped, .destroyed: return exists ? .halt : nil
            }
        }
    }
}
