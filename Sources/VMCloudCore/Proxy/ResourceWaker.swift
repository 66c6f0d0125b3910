import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// Start once, wait until the guest port answers, and the activity that keeps a VM awake.
///
/// Each resource's phase (idle, waking, ready, stopping) and activity is one ResourceState value,
/// changed only by its transitions. Concurrent cold requests for one resource share one bring-up
/// (in this process): the first finds the resource idle and starts it, the others await its
/// outcome. The store's owner key (one live VM per `resource:<id>`, a partial unique index, looked
/// up and inserted in one transaction) keeps it to one VM across processes and restarts. A
/// bring-up asks for the VM (new, or its stopped one wanted running), then polls every 100 ms
/// until libvirt's DHCP server has leased it an address and a TCP connect to the guest port
/// succeeds, all within `startTimeout`. Once up, the address is kept until the VM stops.
///
/// Activity (requests in flight, including responses still streaming, and the time of the
/// last one) lives in the same actor as the stop decision, so a request that begins is either
/// counted before the idle check or waits for the stop to finish and wakes the VM again:
/// never a request forwarded to a VM being stopped.
package actor ResourceWaker {
    package struct Settings: Sendable {
        /// How long a request waits for a VM to start and its port to answer.
        package var startTimeout: TimeInterval = 120
        package var pollInterval: TimeInterval = 0.1
        /// How long one connect to the guest port may take.
        package var probeTimeout: TimeInterval = 1
        /// How long a stop may take before requests stop waiting for it.
        package var stopTimeout: TimeInterval = 60

        package init(startTimeout: TimeInterval = 120, pollInterval: TimeInterval = 0.1, probeTimeout: TimeInterval = 1, stopTimeout: TimeInterval = 60) {
            self.startTimeout = startTimeout
            self.pollInterval = pollInterval
            self.probeTimeout = probeTimeout
            self.stopTimeout = stopTimeout
        }
    }

    package nonisolated let machines: MachineService
    package nonisolated let settings: Settings
    package nonisolated let logger: Logger

    private var resources: [String: ResourceState] = [:]
    /// Fulfilled when the server shuts down: waiting requests end at once (503) instead of holding
    /// the graceful shutdown for up to the start timeout.
    private nonisolated let closing = Promise<Void>()

    package init(machines: MachineService, settings: Settings = Settings(), logger: Logger) {
        self.machines = machines
        self.settings = settings
        self.logger = logger
    }

    package nonisolated var store: Store { machines.store }

    // MARK: - Activity

    /// A request (or connection) for `id` begins; pair with `end`.
    package func begin(_ id: String) { resources[id, default: ResourceState()].begin(at: Date()) }

    package func end(_ id: String) { resources[id, default: ResourceState()].end(at: Date()) }

    package struct Activity: Sendable {
        package var open: Int
        /// Seconds since the last request began or ended; nil: none since this process began.
        package var idleSeconds: Double?
        /// Bring-ups that found the VM not answering yet (a start), since this process began.
        package var starts: Int

        package init(open: Int, idleSeconds: Double? = nil, starts: Int) {
            self.open = open
            self.idleSeconds = idleSeconds
            self.starts = starts
        }
    }

    package func activity(_ id: String) -> Activity {
        let state = resources[id] ?? ResourceState()
        return Activity(open: state.open, idleSeconds: state.lastActive.map { Date().timeIntervalSince($0) }, starts: state.starts)
    }

    /// The server is shutting down: every wait ends at once.
    package nonisolated func close() { closing.fulfil(.success(())) }

    package nonisolated var isClosing: Bool { closing.isFulfilled }

    private static let shuttingDown = Refusal(.unavailable, code: "shutting_down", "the appliance is shutting down")

    /// 503 once the appliance is shutting down.
    package nonisolated func checkOpen() throws {
        if isClosing { throw Self.shuttingDown }
    }

    // MARK: - Start once

    /// The resource's upstream, starting its VM and waiting for its port if need be. When the
    /// server begins its graceful shutdown (it waits for the requests in flight) every wait ends.
    package func upstream(for resource: ResourceRecord) async throws -> Upstream {
        try await withGracefulShutdownHandler {
            try await self.waitForUpstream(resource)
        } onGracefulShutdown: {
            self.close()
        }
    }

    private func waitForUpstream(_ resource: ResourceRecord) async throws -> Upstream {
        let id = resource.id
        // Bounded even if something below blocks (a libvirt call while libvirtd hangs): the
        // bring-up's own deadline plus a little.
        let deadline = ContinuousClock.now + .seconds(settings.startTimeout + 2)
        while true {
            switch resources[id]?.phase ?? .idle {
            case .ready(let upstream):
                return upstream
            case .stopping(let stop):
                // The stop leaves the stopping phase before its task completes: no spin.
                await stop.value
            case .waking(let bringUp):
                return try await outcome(of: bringUp, until: deadline, resource: id)
            case .idle:
                let bringUp = Promise<Upstream>()
                _ = resources[id, default: ResourceState()].wake(bringUp)
                // Not a child of this request: the other requests for the resource share it,
                // and it runs on (to its own deadline) when this one stops waiting.
                Task {
                    let result: Result<Upstream, Error>
                    do { result = .success(try await self.bringUp(resource)) } catch { result = .failure(error) }
                    self.wakeFinished(id, bringUp, result)
                }
                return try await outcome(of: bringUp, until: deadline, resource: id)
            }
        }
    }

    /// The phase changes before the waiters resume, so a request that got the upstream never
    /// finds the resource still waking.
    private func wakeFinished(_ id: String, _ bringUp: Promise<Upstream>, _ result: Result<Upstream, Error>) {
        resources[id, default: ResourceState()].wakeFinished(bringUp, result)
        bringUp.fulfil(result)
    }

    /// A bring-up found the VM not answering yet: it started it.
    package func countStart(_ id: String) { resources[id, default: ResourceState()].countStart() }

    /// The bring-up's outcome, or 504 at `deadline`, or 503 once the appliance closes, whichever
    /// comes first; the bring-up itself runs on.
    private nonisolated func outcome(of bringUp: Promise<Upstream>, until deadline: ContinuousClock.Instant, resource: String) async throws -> Upstream {
        let seconds = Int(settings.startTimeout.rounded())
        return try await withThrowingTaskGroup(of: Upstream.self) { group in
            group.addTask { try await bringUp.value }
            group.addTask {
                try await Task.sleep(until: deadline)
                throw Refusal(.upstreamTimedOut, code: "upstream_timeout",
                               "resource \(resource) did not come up within \(seconds) s (libvirt or the VM did not answer)")
            }
            group.addTask {
                try await self.closing.value
                throw Self.shuttingDown
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// A forward found `upstream` unreachable: the next request looks again.
    package func invalidate(_ id: String, _ upstream: Upstream) { resources[id]?.invalidate(upstream) }

    /// The idle stopper's view of the VM: a kept address is dropped once the VM is not the one
    /// that answered or not running any more (a crash, a restart, a stop from elsewhere).
    package func revalidate(_ id: String, machine: MachineRecord?) { resources[id]?.revalidate(machine) }

    /// Tests: take `upstream` as the resource's, as if its VM had come up there.
    package func prime(_ id: String, _ upstream: Upstream) { resources[id, default: ResourceState()].prime(upstream) }

    /// The resource was deleted: forget its kept address and idle clock.
    package func forget(_ id: String) { resources[id]?.forget() }

    // MARK: - Idle stop

    /// Stops the resource's VM if nothing used it for its idle timeout; true if it began a stop.
    /// A resource never seen active since this process began gets a full timeout from now.
    @discardableResult
    package func stopIfIdle(_ resource: ResourceRecord, now: Date = Date()) -> Bool {
        let id = resource.id
        return resources[id, default: ResourceState()].stopIfIdle(now: now, timeout: Double(resource.idleTimeout)) { idle in
            Task {
                await self.stop(id, reason: "no request for \(Int(idle)) s (idle timeout \(resource.idleTimeout) s)")
                self.stopFinished(id)
            }
        }
    }

    private func stopFinished(_ id: String) { resources[id]?.stopFinished() }

    /// Wants the VM stopped and waits (bounded) until it is, so that a request arriving
    /// meanwhile starts it cleanly again instead of reaching a VM going down. The store says when
    /// the reconciler has stopped it; there is no event to await, so it looks every poll.
    private nonisolated func stop(_ id: String, reason: String) async {
        do {
            guard let machine = try await store.stopResourceMachine(id, reason: reason) else { return }
            logger.info("resource idle: stopping its VM", metadata: ["resource": "\(id)", "machine": "\(machine.id!)", "reason": "\(reason)"])
            machines.kick()
            let deadline = Date().addingTimeInterval(settings.stopTimeout)
            while Date() < deadline, !isClosing {
                guard let current = try await store.machine(machine.id!) else { return }
                if current.desired != .stopped || [.stopped, .failedToSave, .failedToStart, .destroyed].contains(current.status) { return }
                try await Task.sleep(for: .seconds(settings.pollInterval))
            }
            logger.warning("resource VM still stopping", metadata: ["resource": "\(id)", "machine": "\(machine.id!)"])
        } catch {
            logger.error("stopping an idle resource failed", metadata: ["resource": "\(id)", "error": "\(error)"])
        }
    }
}
