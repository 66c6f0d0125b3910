import Dispatch

/// A libvirt connection with automatic reconnection and an event stream.
///
/// Every libvirt call runs on one serial DispatchQueue owned by the client, never on a SwiftNIO
/// event loop or the Swift concurrency pool: libvirt calls block (RPC to libvirtd). Serialising
/// them also keeps ordering simple and makes libvirt's per-thread error reporting reliable.
///
/// `@unchecked Sendable` invariant: every stored `var` is read and written only on `queue`
/// (or in `deinit`, when no other reference exists). Everything else is immutable or Sendable.
public final class LibvirtClient: @unchecked Sendable {
    public let uri: String

    /// Lifecycle and connection events. Single consumer: iterate it from one task. Buffered
    /// without limit so no lifecycle event is dropped while the consumer is busy.
    public let events: AsyncStream<LibvirtEvent>

    private let continuation: AsyncStream<LibvirtEvent>.Continuation
    private let queue: DispatchQueue
    private let reconnectWait: DispatchTimeInterval
    private let log: @Sendable (String) -> Void

    private enum State {
        case idle
        case connected(LibvirtConnection)
        case reconnecting(reason: String)
        case closed
    }

    private var state: State = .idle
    private var generation: UInt64 = 0
    /// Operations issued while reconnecting; each fails once its deadline passes.
    private var pending: [PendingOperation] = []

    private struct PendingOperation {
        let deadline: DispatchTime
        /// Runs the operation and resumes its caller; returns the error it threw, if any.
        let run: (LibvirtConnection) -> Error?
        let fail: (Error) -> Void
    }

    /// Does not block or touch libvirt. `reconnectWait` bounds how long an operation issued
    /// while the connection is down waits for the reconnect before failing.
    public init(
        uri: String,
        reconnectWait: Duration = .seconds(10),
        logger: (@Sendable (String) -> Void)? = nil
    ) {
        self.uri = uri
        let millis = reconnectWait.components.seconds * 1000 + reconnectWait.components.attoseconds / 1_000_000_000_000_000
        self.reconnectWait = .milliseconds(Int(millis))
        self.log = logger ?? { _ in }
        self.queue = DispatchQueue(label: "vmcloud.libvirt.\(uri)")
        (events, continuation) = AsyncStream.makeStream(of: LibvirtEvent.self, bufferingPolicy: .unbounded)
    }

    deinit {
        // No other reference exists, so reading `state` here is safe. The connection is closed
        // on the client's queue because virConnectClose may block.
        if case .connected(let connection) = state {
            queue.async { connection.close() }
        }
        for op in pending { op.fail(LibvirtClientError.closed) }
        continuation.finish()
    }

    /// Opens the connection. Throws libvirt's error if the first attempt fails (no retry).
    public func connect() async throws {
        try await onQueue {
            switch self.state {
            case .connected, .reconnecting: return
            case .closed: throw LibvirtClientError.closed
            case .idle: self.state = .connected(try self.openConnection())
            }
        }
    }

    /// Deregisters callbacks, closes the connection, fails waiting operations and finishes
    /// `events`. Later operations throw `LibvirtClientError.closed`.
    public func close() async {
        try? await onQueue {
            if case .connected(let connection) = self.state { connection.close() }
            self.state = .closed
            let waiting = self.pending
            self.pending = []
            for op in waiting { op.fail(LibvirtClientError.closed) }
            self.continuation.finish()
        }
    }

    // MARK: - Operations

    /// Starts a transient domain (virDomainCreateXML).
    public func createTransientDomain(xml: String) async throws -> DomainInfo {
        try await perform { try $0.createTransientDomain(xml: xml) }
    }

    /// Destroys a domain and undefines it if persistent. False if there is no such domain.
    public func destroyDomain(name: String) async throws -> Bool {
        try await perform { try $0.destroyDomain(name: name) }
    }

    /// Starts a defined virtual network (e.g. "default", libvirt's NAT) unless it runs already.
    /// Returns true when it had to be started.
    public func ensureNetworkActive(name: String) async throws -> Bool {
        try await perform { try $0.ensureNetworkActive(name: name) }
    }

    /// Whether a virtual network runs (without starting it); throws if it is not defined.
    public func networkIsActive(name: String) async throws -> Bool {
        try await perform { try $0.networkIsActive(name: name) }
    }

    /// The host bridge of a virtual network (e.g. virbr0 for "default").
    public func networkBridgeName(name: String) async throws -> String {
        try await perform { try $0.networkBridgeName(name: name) }
    }

    /// All domains, running or only defined.
    public func listDomains() async throws -> [DomainInfo] {
        try await perform { try $0.listDomains() }
    }

    /// The metadata element stored under `namespaceURI`, or nil when the domain has none.
    public func metadata(domain name: String, namespaceURI: String) async throws -> String? {
        try await perform { try $0.metadata(domain: name, namespaceURI: namespaceURI) }
    }

    /// The live domain XML.
    public func xmlDescription(domain name: String) async throws -> String {
        try await perform { try $0.xmlDescription(domain: name) }
    }

    // MARK: - Queue plumbing

    /// Runs `body` on the client's queue and returns its result to the caller.
    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            queue.async { cont.resume(with: Result { try body() }) }
        }
    }

    /// Runs `body` with the live connection on the client's queue, waiting (bounded) for a
    /// reconnect if the connection is currently down.
    /// Internal (not private) so operations in other files (`LibvirtClient+*.swift`) use it too.
    func perform<T: Sendable>(_ body: @escaping @Sendable (LibvirtConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            queue.async {
                let op = PendingOperation(
                    deadline: .now() + self.reconnectWait,
                    run: { connection in
                        do {
                            cont.resume(returning: try body(connection))
                            return nil
                        } catch {
                            LibvirtMetrics.errors.increment()
                            cont.resume(throwing: error)
                            return error
                        }
                    },
                    fail: {
                        LibvirtMetrics.errors.increment()
                        cont.resume(throwing: $0)
                    }
                )
                self.submit(op)
            }
        }
    }

    private func submit(_ op: PendingOperation) {
        dispatchPrecondition(condition: .onQueue(queue))
        switch state {
        case .idle:
            op.fail(LibvirtClientError.notConnected)
        case .closed:
            op.fail(LibvirtClientError.closed)
        case .reconnecting:
            pending.append(op)
            queue.asyncAfter(deadline: op.deadline) { [weak self] in self?.expirePending() }
        case .connected(let connection):
            // A failure may be the first sign of a dead daemon (before the close callback).
            if let error = op.run(connection), !connection.isAlive {
                let reason = (error as? LibvirtError)?.message ?? "\(error)"
                connectionLost(generation: connection.generation, reason: reason)
            }
        }
    }

    private func expirePending() {
        guard case .reconnecting(let reason) = state else { return }
        let now = DispatchTime.now()
        let expired = pending.filter { $0.deadline <= now }
        pending.removeAll { $0.deadline <= now }
        for op in expired { op.fail(LibvirtClientError.disconnected(reason: reason)) }
    }

    // MARK: - Connection management

    private func openConnection() throws -> LibvirtConnection {
        dispatchPrecondition(condition: .onQueue(queue))
        generation += 1
        let generation = self.generation
        return try LibvirtConnection(
            uri: uri,
            generation: generation,
            events: continuation,
            onClose: { [weak self] reason in
                // Called on libvirt's event thread: hop to our queue, never block there.
                guard let self else { return }
                self.queue.async { self.connectionLost(generation: generation, reason: reason) }
            },
            log: log
        )
    }

    private func connectionLost(generation: UInt64, reason: String) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard case .connected(let connection) = state, connection.generation == generation else { return }
        log("libvirt: connection to \(uri) lost (\(reason)); reconnecting")
        connection.close()
        state = .reconnecting(reason: reason)
        continuation.yield(.disconnected(reason: reason))
        scheduleReconnect(after: 0.2)
    }

    private func scheduleReconnect(after delay: Double) {
        queue.asyncAfter(deadline: .now() + delay) { [weak self] in self?.attemptReconnect(delay: delay) }
    }

    private func attemptReconnect(delay: Double) {
        guard case .reconnecting = state else { return }
        do {
            state = .connected(try openConnection())
        } catch {
            let next = min(delay * 2, 5)
            log("libvirt: reconnect to \(uri) failed (\(error)); retrying in \(next) s")
            scheduleReconnect(after: next)
            return
        }
        log("libvirt: reconnected to \(uri)")
        LibvirtMetrics.reconnects.increment()
        continuation.yield(.reconnected)
        let waiting = pending
        pending = []
        for op in waiting { submit(op) }
    }
}
