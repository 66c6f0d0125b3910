/// The legal edges of a generic VM's status, as one pure function. Every status write goes
/// through `Store.moveMachine`, which refuses an edge this table does not allow: a bug that
/// would skip a step (a stopped VM straight to running, a destroyed one back to life) fails
/// loudly instead of leaving a row that the reconciler cannot explain.
package enum MachineLifecycle {
    package struct IllegalEdge: Error, Equatable, CustomStringConvertible {
        package let machine: Int64
        package let from: MachineStatus
        package let to: MachineStatus

        package init(machine: Int64, from: MachineStatus, to: MachineStatus) {
            self.machine = machine
            self.from = from
            self.to = to
        }

        package var description: String { "VM \(machine): \(from.rawValue) -> \(to.rawValue) is not a legal status change" }
    }

    package static func allows(_ from: MachineStatus, _ to: MachineStatus) -> Bool {
        if from == to { return true }
        if from == .destroyed { return false }
        if to == .destroyed { return true }
        switch from {
        // Domain created (running, or installing until the agent's hello), or given up on; a
        // stop asked meanwhile goes to saving.
        case .starting: return [.installing, .running, .failedToStart, .saving].contains(to)
        // Asked again, or stopped.
        case .failedToStart: return [.starting, .saving].contains(to)
        // Hello; paused; crashed and restarted (starting) or halted (saving).
        case .installing: return [.running, .suspended, .starting, .saving].contains(to)
        case .running: return [.suspended, .starting, .saving].contains(to)
        // Resumed (to running, or installing without a hello yet); crashed; halted.
        case .suspended: return [.running, .installing, .starting, .saving].contains(to)
        case .saving: return [.stopped, .failedToSave].contains(to)
        // Wanted running again: fresh disks.
        case .stopped, .failedToSave: return to == .starting
        case .destroyed: return false
        }
    }
}
