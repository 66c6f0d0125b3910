import Foundation

/// Where a resource's requests go: its VM's address on libvirt's NAT network and the port.
package struct Upstream: Sendable, Equatable {
    package let host: String
    package let port: Int
    package let machineId: Int64

    package init(host: String, port: Int, machineId: Int64) {
        self.host = host
        self.port = port
        self.machineId = machineId
    }
}

/// One smart-proxy resource as the waker sees it: where its VM stands (`phase`) and the activity
/// that keeps it awake, in one value, so that a combination such as "ready while stopping" cannot
/// be written down. The phase changes only through the transitions below; they are pure (no
/// libvirt, no clock of their own), so ResourceStateTests checks them as a table.
package struct ResourceState: Sendable {
    package enum Phase: Sendable, Equatable {
        /// No address kept and nothing under way: the next request brings the VM up.
        case idle
        /// A bring-up runs; every request for the resource awaits this one outcome.
        case waking(Promise<Upstream>)
        /// The VM answered there; kept until it stops, is seen gone, or a forward to it fails.
        case ready(Upstream)
        /// An idle stop runs; a request awaits it, then wakes the VM again.
        case stopping(Task<Void, Never>)
    }

    package private(set) var phase = Phase.idle
    /// Requests (or connections) in flight, responses still streaming included.
    package private(set) var open = 0
    /// When the last request began or ended; nil: none since this process began or the last stop.
    package private(set) var lastActive: Date?
    /// Bring-ups that found the VM not answering yet (a start), since this process began.
    package private(set) var starts = 0

    package init(phase: Phase = .idle) { self.phase = phase }

    // MARK: - Activity

    package mutating func begin(at now: Date) {
        open += 1
        lastActive = now
    }

    package mutating func end(at now: Date) {
        open = max(0, open - 1)
        lastActive = now
    }

    package mutating func countStart() { starts += 1 }

    // MARK: - Phase transitions

    /// idle → waking; false in any other phase (a request then joins or awaits what runs).
    package mutating func wake(_ bringUp: Promise<Upstream>) -> Bool {
        guard phase == .idle else { return false }
        phase = .waking(bringUp)
        return true
    }

    /// waking → ready, or idle if it failed (the next request tries again). Only the bring-up
    /// under way ends the waking phase.
    package mutating func wakeFinished(_ bringUp: Promise<Upstream>, _ result: Result<Upstream, Error>) {
        guard phase == .waking(bringUp) else { return }
        switch result {
        case .success(let upstream): phase = .ready(upstream)
        case .failure: phase = .idle
        }
    }

    /// ready → idle: a forward found `upstream` unreachable, so the next request looks again.
    package mutating func invalidate(_ upstream: Upstream) {
        if phase == .ready(upstream) { phase = .idle }
    }

    /// ready → idle unless `machine` is the VM that answered, still wanted and seen running: a
    /// crash, a restart or a stop from elsewhere drops the kept address.
    package mutating func revalidate(_ machine: MachineRecord?) {
        guard case .ready(let upstream) = phase else { return }
        if let machine, machine.id == upstream.machineId, machine.desired == .running,
           machine.status == .running || machine.status == .installing {
            return
        }
        phase = .idle
    }

    /// Tests: idle or ready → ready at `upstream`, as if its VM had come up there.
    package mutating func prime(_ upstream: Upstream) {
        switch phase {
        case .idle, .ready: phase = .ready(upstream)
        case .waking, .stopping: break
        }
    }

    /// The resource was deleted: its kept address and idle clock go (a bring-up or stop under way
    /// ends by itself).
    package mutating func forget() {
        if case .ready = phase { phase = .idle }
        lastActive = nil
    }

    /// idle or ready → stopping, if nothing used the resource for `timeout`: no request open, no
    /// bring-up or stop under way, and the last activity at least `timeout` before `now`. A
    /// resource not seen active since this process began gets a full timeout from `now`.
    /// `stop` makes the stop task, given the seconds idle; the idle clock starts again after it.
    package mutating func stopIfIdle(now: Date, timeout: TimeInterval, stop: (_ idleSeconds: TimeInterval) -> Task<Void, Never>) -> Bool {
        guard open == 0 else { return false }
        switch phase {
        case .waking, .stopping: return false
        case .idle, .ready: break
        }
        guard let last = lastActive else {
            lastActive = now
            return false
        }
        let idle = now.timeIntervalSince(last)
        guard idle >= timeout else { return false }
        lastActive = nil
        phase = .stopping(stop(idle))
        return true
    }

    /// stopping → idle. Only the stop task calls it (nothing else leaves the stopping phase), and
    /// before it completes, so a request that awaited the task finds the phase changed: a
    /// leftover stopping phase once made such a request spin on the actor, awaiting the finished
    /// task again and again.
    package mutating func stopFinished() {
        if case .stopping = phase { phase = .idle }
    }
}
