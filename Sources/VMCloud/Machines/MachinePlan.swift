import Libvirt

/// What the reconciler does next for one generic VM, decided from its row (desired and status)
/// and the real state of its domain alone: a pure function, tested without libvirt.
enum MachineAction: Equatable, Sendable {
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

enum MachinePlan {
    /// What the decision needs of a machine's row: a pass reads only this for every VM and the
    /// whole record only for those that need an action.
    struct Row: Sendable, Equatable, Decodable {
        var id: Int64
        var domainName: String
        var desired: MachineDesired
        var status: MachineStatus
        var agentSeen: Bool
        var runAgent: Bool
    }

    static func next(_ machine: MachineRecord, domain: DomainState?) -> MachineAction? {
        next(Row(id: machine.id ?? 0, domainName: machine.domainName, desired: machine.desired, status: machine.status,
                 agentSeen: machine.agentSeen, runAgent: machine.spec.runAgent), domain: domain)
    }

    /// nil: nothing to do. `domain` is nil when libvirt has no such domain.
    static func next(_ machine: Row, domain: DomainState?) -> MachineAction? {
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
