import Foundation
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The waker's per-resource state as a table: (phase, event) -> phase, without libvirt.
@Suite struct ResourceStateTests {
    static let address = Upstream(host: "192.168.122.5", port: 80, machineId: 7)
    static let elsewhere = Upstream(host: "192.168.122.6", port: 80, machineId: 8)
    static let bringUp = Promise<Upstream>()
    static let otherBringUp = Promise<Upstream>()
    static let stop = Task<Void, Never> {}

    static func machine(_ id: Int64, _ desired: MachineDesired, _ status: MachineStatus) -> MachineRecord {
        MachineRecord(
            id: id, uuid: "u", name: "resource.web",
            spec: MachineSpec.plain(hda: .stored("a"), runAgent: false),
            desired: desired, status: status, reason: nil, ip: nil, agentVersion: nil, agentSeen: false, ownerKey: "resource:web",
            accessKey: nil, domainName: "d", createdAt: Date(), statusSince: Date())
    }

    enum Event: Sendable {
        case wake, wakeSucceeded, wakeFailed, otherWakeFinished
        case invalidate(Upstream)
        case revalidate(MachineRecord?)
        case prime, forget
        /// The idle stopper after a full quiet timeout.
        case idleStop
        case stopFinished
    }

    static func apply(_ event: Event, to state: inout ResourceState) {
        switch event {
        case .wake: _ = state.wake(bringUp)
        case .wakeSucceeded: state.wakeFinished(bringUp, .success(address))
        case .wakeFailed: state.wakeFinished(bringUp, .failure(CancellationError()))
        case .otherWakeFinished: state.wakeFinished(otherBringUp, .success(elsewhere))
        case .invalidate(let upstream): state.invalidate(upstream)
        case .revalidate(let machine): state.revalidate(machine)
        case .prime: state.prime(address)
        case .forget: state.forget()
        case .idleStop:
            let then = Date()
            state.begin(at: then)
            state.end(at: then)
            _ = state.stopIfIdle(now: then.addingTimeInterval(10), timeout: 5) { _ in stop }
        case .stopFinished: state.stopFinished()
        }
    }

    @Test(arguments: [
        // A cold request starts one bring-up; later ones join it or wait for the stop.
        (ResourceState.Phase.idle, Event.wake, ResourceState.Phase.waking(bringUp)),
        (.waking(otherBringUp), .wake, .waking(otherBringUp)),
        (.ready(address), .wake, .ready(address)),
        (.stopping(stop), .wake, .stopping(stop)),
        // Only the bring-up under way ends the waking phase.
        (.waking(bringUp), .wakeSucceeded, .ready(address)),
        (.waking(bringUp), .wakeFailed, .idle),
        (.waking(bringUp), .otherWakeFinished, .waking(bringUp)),
        (.idle, .wakeSucceeded, .idle),
        (.stopping(stop), .wakeSucceeded, .stopping(stop)),
        // A failed forward drops only the address it failed on.
        (.ready(address), .invalidate(address), .idle),
        (.ready(address), .invalidate(elsewhere), .ready(address)),
        (.waking(bringUp), .invalidate(address), .waking(bringUp)),
        // The idle stopper's view of the VM keeps the address only for the VM that answered, running.
        (.ready(address), .revalidate(machine(7, .running, .running)), .ready(address)),
        (.ready(address), .revalidate(machine(7, .running, .installing)), .ready(address)),
        (.ready(address), .revalidate(nil), .idle),
        (.ready(address), .revalidate(machine(8, .running, .running)), .idle),
        (.ready(address), .revalidate(machine(7, .stopped, .running)), .idle),
        (.ready(address), .revalidate(machine(7, .running, .stopped)), .idle),
        (.stopping(stop), .revalidate(nil), .stopping(stop)),
        (.idle, .prime, .ready(address)),
        (.stopping(stop), .prime, .stopping(stop)),
        (.ready(address), .forget, .idle),
        (.waking(bringUp), .forget, .waking(bringUp)),
        (.stopping(stop), .forget, .stopping(stop)),
        // An idle stop begins only when nothing is under way; ready while stopping cannot be.
        (.idle, .idleStop, .stopping(stop)),
        (.ready(address), .idleStop, .stopping(stop)),
        (.waking(bringUp), .idleStop, .waking(bringUp)),
        (.stopping(stop), .idleStop, .stopping(stop)),
        (.stopping(stop), .stopFinished, .idle),
        (.ready(address), .stopFinished, .ready(address)),
        (.waking(bringUp), .stopFinished, .waking(bringUp)),
    ] as [(ResourceState.Phase, Event, ResourceState.Phase)])
    func transition(from phase: ResourceState.Phase, on event: Event, to expected: ResourceState.Phase) {
        var state = ResourceState(phase: phase)
        Self.apply(event, to: &state)
        #expect(state.phase == expected)
    }

    /// The stop decision: never while a request is open, a full quiet timeout after the last
    /// activity, and a first sighting (after a restart) starts the clock.
    @Test func idleStopNeedsAFullQuietTimeout() {
        var state = ResourceState(phase: .ready(Self.address))
        let now = Date()
        var idleSeconds: TimeInterval?
        func stopIfIdle(after seconds: TimeInterval) -> Bool {
            state.stopIfIdle(now: now.addingTimeInterval(seconds), timeout: 5) { idleSeconds = $0; return Self.stop }
        }
        #expect(!stopIfIdle(after: 0), "first sighting starts the clock")
        #expect(state.lastActive == now)
        #expect(!stopIfIdle(after: 4.9))
        state.begin(at: now.addingTimeInterval(1))
        #expect(!stopIfIdle(after: 60), "a request is open")
        state.end(at: now.addingTimeInterval(2))
        state.end(at: now.addingTimeInterval(2))
        #expect(state.open == 0, "an extra end does not go below zero")
        #expect(!stopIfIdle(after: 6.9))
        #expect(idleSeconds == nil, "no stop task made yet")
        #expect(stopIfIdle(after: 7))
        #expect(idleSeconds == 5 && state.phase == .stopping(Self.stop))
        #expect(state.lastActive == nil, "the clock starts again after the stop")
    }

    @Test func wakeTellsWhetherItStartedABringUp() {
        var state = ResourceState()
        let first = state.wake(Self.bringUp)
        let second = state.wake(Self.otherBringUp)
        #expect(first && state.phase == .waking(Self.bringUp))
        #expect(!second && state.phase == .waking(Self.bringUp), "a second request joins the first bring-up")
        state.countStart()
        #expect(state.starts == 1)
    }
}
