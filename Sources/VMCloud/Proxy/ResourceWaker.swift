import Foundation
import Libvirt
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Where a resource's requests go: its VM's address on libvirt's NAT network and the port.
struct Upstream: Sendable, Equatable {
    let host: String
    let port: Int
    let machineId: Int64
}

/// Start once, wait until the guest port answers, and the activity that keeps a VM awake.
///
/// Concurrent cold requests for one resource share one bring-up task (in this process); the
/// store's owner key (one live VM per `resource:<id>`, a partial unique index, looked up and
/// inserted in one transaction) keeps it to one VM across processes and restarts. A bring-up
/// asks for the VM (new, or its stopped one wanted running), then polls every 100 ms until
/// libvirt's DHCP server has leased it an address and a TCP connect to the guest port
/// succeeds, all within `startTimeout`. Once up, the address is kept until the VM stops.
///
/// Activity (requests in flight, including responses still streaming, and the time of the
/// last one) lives in the same actor as the stop decision, so a request that begins is either
/// counted before the idle check or waits for the stop to finish and wakes the VM again:
/// never a request forwarded to a VM being stopped.
actor ResourceWaker {
    struct Settings: Sendable {
        /// How long a request waits for a VM to start and its port to answer.
        var startTimeout: TimeInterval = 120
        var pollInterval: TimeInterval = 0.1
        /// How long one connect to the guest port may take.
        var probeTimeout: TimeInterval = 1
        /// How long a stop may take before requests stop waiting for it.
        var stopTimeout: TimeInterval = 60
    }

    nonisolated let machines: MachineService
    nonisolated let settings: Settings
    nonisolated let logger: Logger

    private var ready: [String: Upstream] = [:]
    private var waking: [String: Task<Upstream, Error>] = [:]
    private var stopping: [String: Task<Void, Never>] = [:]
    private var open: [String: Int] = [:]
    private var lastActive: [String: Date] = [:]
    /// Set when the server shuts down: waiting requests end at once (503) instead of holding the
    /// graceful shutdown for up to the start timeout.
    private nonisolated let closing = Mutex(false)
    /// Bring-ups that found the VM not answering yet (a start), per resource, since this process began.
    private(set) var starts: [String: Int] = [:]

    init(machines: MachineService, settings: Settings = Settings(), logger: Logger) {
        self.machines = machines
        self.settings = settings
        self.logger = logger
    }

    nonisolated var store: Store { machines.store }

    // MARK: - Activity

    /// A request (or connection) for `id` begins; pair with `end`.
    func begin(_ id: String) {
        open[id, default: 0] += 1
        lastActive[id] = Date()
    }

    func end(_ id: String) {
        let left = (open[id] ?? 1) - 1
        open[id] = left > 0 ? left : nil
        lastActive[id] = Date()
    }

    struct Activity: Sendable {
        var open: Int
        /// Seconds since the last request began or ended; nil: none since this process began.
        var idleSeconds: Double?
        var starts: Int
    }

    func activity(_ id: String) -> Activity {
        Activity(open: open[id] ?? 0, idleSeconds: lastActive[id].map { Date().timeIntervalSince($0) }, starts: starts[id] ?? 0)
    }

    /// The server is shutting down: every wait ends within one poll.
    nonisolated func close() { closing.withLock { $0 = true } }

    nonisolated var isClosing: Bool { closing.withLock { $0 } }

    private nonisolated func checkOpen() throws {
        if isClosing {
            throw APIError(status: .serviceUnavailable, code: "shutting_down", message: "the appliance is shutting down")
        }
    }

    // MARK: - Start once

    /// The resource's upstream, starting its VM and waiting for its port if need be. When the
    /// server begins its graceful shutdown (it waits for the requests in flight) every wait ends.
    func upstream(for resource: ResourceRecord) async throws -> Upstream {
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
        let deadline = Date().addingTimeInterval(settings.startTimeout + 2)
        while let stop = stopping[id] { await stop.value }
        if let upstream = ready[id] { return upstream }
        let task: Task<Upstream, Error>
        if let existing = waking[id] {
            task = existing
        } else {
            task = Task { try await self.bringUp(resource) }
            waking[id] = task
            Task {
                let result = await task.result
                self.wakeFinished(id, task, result)
            }
        }
        return try await Self.value(of: task, by: deadline, isClosing: { [self] in self.isClosing }, resource: id, seconds: settings.startTimeout)
    }

    private func wakeFinished(_ id: String, _ task: Task<Upstream, Error>, _ result: Result<Upstream, Error>) {
        if waking[id] == task { waking[id] = nil }
        if case .success(let upstream) = result { ready[id] = upstream }
    }

    /// The task's value, or 504 at `deadline`, or 503 once the appliance closes, whichever is
    /// first; the task itself runs on.
    private static func value(of task: Task<Upstream, Error>, by deadline: Date, isClosing: @escaping @Sendable () -> Bool, resource: String,
                              seconds: TimeInterval) async throws -> Upstream {
        let once = ResumeOnce<Upstream>()
        return try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            Task { once.resume(await task.result) }
            Task {
                while Date() < deadline, !once.done, !isClosing() {
                    try? await Task.sleep(for: .milliseconds(100))
                }
                if isClosing() {
                    once.resume(.failure(APIError(status: .serviceUnavailable, code: "shutting_down", message: "the appliance is shutting down")))
                }
                once.resume(.failure(APIError(status: .gatewayTimeout, code: "upstream_timeout",
                                              message: "resource \(resource) did not come up within \(Int(seconds.rounded())) s (libvirt or the VM did not answer)")))
            }
        }
    }

    /// A forward found `upstream` unreachable: the next request looks again.
    func invalidate(_ id: String, _ upstream: Upstream) {
        if ready[id] == upstream { ready[id] = nil }
    }

    /// The idle stopper's view of the VM: a kept address is dropped once the VM is not the one
    /// that answered or not running any more (a crash, a restart, a stop from elsewhere).
    func revalidate(_ id: String, machine: MachineRecord?) {
        guard let upstream = ready[id] else { return }
        guard let machine, machine.id == upstream.machineId, machine.desired == .running,
              machine.status == .running || machine.status == .installing
        else {
            ready[id] = nil
            return
        }
    }

    /// Tests: take `upstream` as the resource's, as if its VM had come up there.
    func prime(_ id: String, _ upstream: Upstream) { ready[id] = upstream }

    /// The resource was deleted: forget its state.
    func forget(_ id: String) {
        ready[id] = nil
        lastActive[id] = nil
    }

    private nonisolated func bringUp(_ resource: ResourceRecord) async throws -> Upstream {
        let id = resource.id
        let started = Date()
        let deadline = started.addingTimeInterval(settings.startTimeout)
        try checkOpen()
        do {
            try await machines.ensureNetworkActive("default")
        } catch let error as LibvirtError where !error.isConnectionFailure {
            throw APIError(status: .serviceUnavailable, code: "network_unavailable",
                           message: "libvirt's NAT network 'default' cannot be started (\(error)); install dnsmasq-base")
        }
        guard let (machine, created) = try await store.ensureResourceMachine(id) else {
            throw APIError.notFound("no resource '\(id)'")
        }
        machines.reconciler.kick()
        var problem = "its VM is \(machine.status.rawValue)"
        var guestUp = false
        var firstTry = true
        while true {
            try checkOpen()
            guard let current = try await store.machine(machine.id!), current.desired != .destroyed else {
                throw APIError.notFound("resource '\(id)' was deleted")
            }
            switch current.status {
            case .failedToStart:
                throw APIError(status: .badGateway, code: "upstream_failed",
                               message: "the VM of resource \(id) failed to start: \(current.reason ?? "no reason recorded")")
            case .installing, .running:
                if let address = try await machines.leasedAddress(domain: current.domainName) {
                    guestUp = true
                    let remaining = max(0.05, min(settings.probeTimeout, deadline.timeIntervalSinceNow))
                    switch await PortProbe.probe(host: address, port: resource.port, timeout: .milliseconds(Int64(remaining * 1000))) {
                    case .open:
                        let waited = Date().timeIntervalSince(started)
                        if !firstTry || created { await countStart(id) }
                        logger.info("resource up", metadata: [
                            "resource": "\(id)", "machine": "\(current.id!)", "address": "\(address):\(resource.port)",
                            "waited": "\(String(format: "%.2f", waited)) s", "created": "\(created)"])
                        return Upstream(host: address, port: resource.port, machineId: current.id!)
                    case .closed(let why):
                        problem = "guest port \(resource.port) at \(address): \(why)"
                    }
                } else {
                    problem = "its VM runs; no DHCP lease yet"
                }
            default:
                problem = "its VM is \(current.status.rawValue)"
            }
            firstTry = false
            guard Date() < deadline else { break }
            try await Task.sleep(for: .seconds(settings.pollInterval))
        }
        let seconds = Int(settings.startTimeout.rounded())
        if guestUp {
            throw APIError(status: .badGateway, code: "upstream_refused",
                           message: "resource \(id): its VM runs but \(problem) (waited \(seconds) s)")
        }
        throw APIError(status: .gatewayTimeout, code: "upstream_timeout",
                       message: "resource \(id) did not come up within \(seconds) s: \(problem)")
    }

    private func countStart(_ id: String) { starts[id, default: 0] += 1 }

    // MARK: - Idle stop

    /// Stops the resource's VM if nothing used it for its idle timeout; true if it began a stop.
    /// A resource never seen active since this process began gets a full timeout from now.
    @discardableResult
    func stopIfIdle(_ resource: ResourceRecord, now: Date = Date()) -> Bool {
        let id = resource.id
        guard open[id] == nil, waking[id] == nil, stopping[id] == nil else { return false }
        guard let last = lastActive[id] else {
            lastActive[id] = now
            return false
        }
        guard now.timeIntervalSince(last) >= Double(resource.idleTimeout) else { return false }
        ready[id] = nil
        lastActive[id] = nil
        let idle = Int(now.timeIntervalSince(last))
        // The task clears its own entry before it completes, so a request that waited for it
        // finds it gone (awaiting a finished task does not suspend: a leftover entry would make
        // the waiter's loop spin on the actor).
        stopping[id] = Task {
            await self.stop(id, reason: "no request for \(idle) s (idle timeout \(resource.idleTimeout) s)")
            self.stopFinished(id)
        }
        return true
    }

    private func stopFinished(_ id: String) { stopping[id] = nil }

    /// Wants the VM stopped and waits (bounded) until it is, so that a request arriving
    /// meanwhile starts it cleanly again instead of reaching a VM going down.
    private nonisolated func stop(_ id: String, reason: String) async {
        do {
            guard let machine = try await store.stopResourceMachine(id, reason: reason) else { return }
            logger.info("resource idle: stopping its VM", metadata: ["resource": "\(id)", "machine": "\(machine.id!)", "reason": "\(reason)"])
            machines.reconciler.kick()
            let deadline = Date().addingTimeInterval(settings.stopTimeout)
            while Date() < deadline, !closing.withLock({ $0 }) {
                guard let current = try await store.machine(machine.id!) else { return }
                if current.desired != .stopped || [.stopped, .failedToSave, .failedToStart, .destroyed].contains(current.status) { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            logger.warning("resource VM still stopping", metadata: ["resource": "\(id)", "machine": "\(machine.id!)"])
        } catch {
            logger.error("stopping an idle resource failed", metadata: ["resource": "\(id)", "error": "\(error)"])
        }
    }
}

/// A continuation resumed by the first of several racers.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, Error>?, done: Bool)>((nil, false))

    var done: Bool { state.withLock { $0.done } }

    func set(_ continuation: CheckedContinuation<T, Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func resume(_ result: Result<T, Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<T, Error>? in
            guard !state.done else { return nil }
            state.done = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result)
    }
}
