import Foundation
import CPulse

/// One libpulse client connection: a `pa_threaded_mainloop` (libpulse's own thread) and the
/// `pa_context` talking to a daemon over its unix socket.
///
/// All libpulse work happens on the mainloop's thread: requests are issued under the mainloop
/// lock (held only for the call, never across a wait) and their replies resume Swift
/// continuations from libpulse callbacks, so no NIO event loop or cooperative-pool thread ever
/// blocks on PulseAudio.
///
/// PulseAudio may restart (crash, CPU watchdog, operator). libpulse contexts cannot reconnect,
/// so on loss the state becomes `.failed`, every pending request throws, and every capture on
/// this connection ends. Calling `connect()` again makes a fresh context on the same mainloop;
/// sinks loaded before are gone with the old daemon, so the caller re-creates them.
///
/// Thread safety: mutable state below is only touched with the mainloop lock held (libpulse
/// holds it while running callbacks), hence `@unchecked Sendable`.
public final class PulseConnection: @unchecked Sendable {
    public enum State: Sendable, Equatable {
        case disconnected
        case connecting
        case ready
        /// The connection broke or could not be made; the string is libpulse's reason.
        case failed(String)
    }

    /// libpulse server string, `unix:/path/to/socket`.
    public let server: String
    private let clientName: String
    private let mainloop: OpaquePointer
    private let onStateChange: (@Sendable (State) -> Void)?

    // Guarded by the mainloop lock.
    private var context: OpaquePointer?
    private var currentState: State = .disconnected
    private var connectWaiters: [CheckedContinuation<Void, Error>] = []
    private var pending: [ObjectIdentifier: PendingOperation] = [:]

    /// Starts the mainloop thread; call `connect()` to reach the daemon.
    ///
    /// - Parameter onStateChange: called on the libpulse thread with the lock held, so it must
    ///   return quickly (hand off to a task to react, e.g. to reconnect and re-create sinks).
    public init(socketPath: String, clientName: String = "vmcloud",
                onStateChange: (@Sendable (State) -> Void)? = nil) throws {
        server = "unix:" + socketPath
        self.clientName = clientName
        self.onStateChange = onStateChange
        guard let loop = pa_threaded_mainloop_new() else {
            throw PulseError.setupFailed("pa_threaded_mainloop_new")
        }
        guard pa_threaded_mainloop_start(loop) == 0 else {
            pa_threaded_mainloop_free(loop)
            throw PulseError.setupFailed("pa_threaded_mainloop_start")
        }
        mainloop = loop
    }

    deinit {
        withLock { dropContext(reason: "connection closed") }
        let loop = MainloopHandle(mainloop)
        if pa_threaded_mainloop_in_thread(mainloop) != 0 {
            // The last reference went away inside a libpulse callback (a capture released there
            // held it). The mainloop cannot stop itself from its own thread: stop it from another.
            Thread.detachNewThread { loop.stopAndFree() }
        } else {
            loop.stopAndFree()
        }
    }

    /// The mainloop pointer, movable to the thread that stops it.
    private struct MainloopHandle: @unchecked Sendable {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
        func stopAndFree() {
            pa_threaded_mainloop_stop(pointer)
            pa_threaded_mainloop_free(pointer)
        }
    }

    public var state: State { withLock { currentState } }

    /// Connects (or reconnects after `.failed`); returns when the context is ready. Concurrent
    /// callers share one attempt.
    public func connect() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            withLock {
                switch currentState {
                case .ready:
                    continuation.resume()
                    return
                case .connecting:
                    connectWaiters.append(continuation)
                    return
                case .disconnected, .failed:
                    break
                }
                dropContext(reason: "reconnecting")
                guard let ctx = pa_context_new(pa_threaded_mainloop_get_api(mainloop), clientName) else {
                    continuation.resume(throwing: PulseError.setupFailed("pa_context_new"))
                    return
                }
                pa_context_set_state_callback(ctx, { ctx, userdata in
                    guard let ctx, let userdata else { return }
                    Unmanaged<PulseConnection>.fromOpaque(userdata).takeUnretainedValue().contextStateChanged(ctx)
                }, Unmanaged.passUnretained(self).toOpaque())
                // NOAUTOSPAWN: never let libpulse start a session daemon behind our back.
                if pa_context_connect(ctx, server, PA_CONTEXT_NOAUTOSPAWN, nil) < 0 {
                    let reason = Self.errorString(ctx)
                    pa_context_set_state_callback(ctx, nil, nil)
                    pa_context_unref(ctx)
                    setState(.failed(reason))
                    continuation.resume(throwing: PulseError.notConnected("\(server): \(reason)"))
                    return
                }
                context = ctx
                connectWaiters.append(continuation)
                setState(.connecting)
            }
        }
    }

    /// Loads `module-null-sink` named `name` in the relay's capture format (48 kHz, stereo,
    /// s16le, so the monitor needs no resampling). Returns the module index for `unloadModule`.
    public func loadNullSink(name: String) async throws -> UInt32 {
        try Self.validate(name: name)
        let arguments = "sink_name=\(name) rate=\(AudioFormat.sampleRate) channels=\(AudioFormat.channels) format=s16le"
        return try await perform { ctx, userdata in
            pa_context_load_module(ctx, "module-null-sink", arguments, { ctx, index, userdata in
                PulseConnection.complete(userdata, index == UInt32.max
                    ? .failure(PulseError.requestFailed("load module-null-sink: \(PulseConnection.errorString(ctx))"))
                    : .success(index))
            }, userdata)
        }
    }

    /// Unloads a module (e.g. a VM's null sink); streams on it end. The daemon replies before its
    /// deferred teardown runs, so `sinkExists` may still be true for a few milliseconds.
    public func unloadModule(index: UInt32) async throws {
        _ = try await perform { ctx, userdata in
            pa_context_unload_module(ctx, index, { ctx, success, userdata in
                PulseConnection.complete(userdata, success != 0
                    ? .success(0)
                    : .failure(PulseError.requestFailed("unload module: \(PulseConnection.errorString(ctx))")))
            }, userdata)
        }
    }

    /// Whether the daemon has a sink of that name.
    public func sinkExists(name: String) async throws -> Bool {
        try await sinkOwnerModule(name: name) != nil
    }

    /// The names of every sink the daemon has.
    public func sinkNames() async throws -> [String] {
        let list = NameList()
        _ = try await perform(collecting: list) { ctx, userdata in
            pa_context_get_sink_info_list(ctx, { ctx, info, eol, userdata in
                guard let userdata else { return }
                let op = Unmanaged<PendingOperation>.fromOpaque(userdata).takeUnretainedValue()
                if let info, let name = info.pointee.name { op.names?.names.append(String(cString: name)) }
                if eol > 0 {
                    PulseConnection.complete(userdata, .success(0))
                } else if eol < 0 {
                    PulseConnection.complete(userdata, .failure(PulseError.requestFailed("sink list: \(PulseConnection.errorString(ctx))")))
                }
            }, userdata)
        }
        return list.names
    }

    /// The index of the module that owns sink `name` (for a null sink, the module to unload to
    /// remove it), or nil if there is no such sink.
    public func sinkOwnerModule(name: String) async throws -> UInt32? {
        let index = try await perform { ctx, userdata in
            pa_context_get_sink_info_by_name(ctx, name, { ctx, info, eol, userdata in
                // Called once per match (eol 0), then once with eol 1; a missing name gives a
                // single call with eol -1 and PA_ERR_NOENTITY.
                guard let userdata else { return }
                let op = Unmanaged<PendingOperation>.fromOpaque(userdata).takeUnretainedValue()
                if let info { op.ownerModule = info.pointee.owner_module }
                if eol > 0 {
                    PulseConnection.complete(userdata, .success(op.ownerModule ?? UInt32.max))
                } else if eol < 0 {
                    PulseConnection.complete(userdata, pa_context_errno(ctx) == Int32(PA_ERR_NOENTITY.rawValue)
                        ? .success(UInt32.max)
                        : .failure(PulseError.requestFailed("sink info: \(PulseConnection.errorString(ctx))")))
                }
            }, userdata)
        }
        return index == UInt32.max ? nil : index
    }

    // MARK: - Internals shared with PulseCapture

    /// Runs `body` with the mainloop lock held. On the mainloop's own thread (inside a libpulse
    /// callback, e.g. when the last reference to a capture is released there) the lock is already
    /// held and libpulse aborts if it is taken again, so `body` just runs.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        if pa_threaded_mainloop_in_thread(mainloop) != 0 { return try body() }
        pa_threaded_mainloop_lock(mainloop)
        defer { pa_threaded_mainloop_unlock(mainloop) }
        return try body()
    }

    /// The context if it is ready; call with the lock held.
    var readyContext: OpaquePointer? { currentState == .ready ? context : nil }

    static func errorString(_ ctx: OpaquePointer?) -> String {
        guard let ctx else { return "no context" }
        return String(cString: pa_strerror(pa_context_errno(ctx)))
    }

    // MARK: - Private

    /// One in-flight request. Retained once for libpulse (the callback userdata) and held in
    /// `pending`; whoever removes it from `pending` (its reply, or the context's death, after
    /// which libpulse cancels operations without calling them back) resumes and releases it.
    private final class PendingOperation: @unchecked Sendable {
        let continuation: CheckedContinuation<UInt32, Error>
        unowned let connection: PulseConnection
        var ownerModule: UInt32?
        /// Where a list request puts what it finds.
        var names: NameList?
        init(_ continuation: CheckedContinuation<UInt32, Error>, _ connection: PulseConnection) {
            self.continuation = continuation
            self.connection = connection
        }
    }

    /// Names collected on the mainloop thread, read by the caller once the request completed.
    private final class NameList: @unchecked Sendable {
        var names: [String] = []
    }

    private func perform(collecting names: NameList? = nil,
                         _ start: (OpaquePointer, UnsafeMutableRawPointer) -> OpaquePointer?) async throws -> UInt32 {
        try await withCheckedThrowingContinuation { continuation in
            withLock {
                guard let ctx = readyContext else {
                    continuation.resume(throwing: PulseError.notConnected("\(server): \(currentState)"))
                    return
                }
                let op = PendingOperation(continuation, self)
                op.names = names
                let userdata = Unmanaged.passRetained(op).toOpaque()
                guard let operation = start(ctx, userdata) else {
                    Unmanaged<PendingOperation>.fromOpaque(userdata).release()
                    continuation.resume(throwing: PulseError.requestFailed(Self.errorString(ctx)))
                    return
                }
                pa_operation_unref(operation)
                pending[ObjectIdentifier(op)] = op
            }
        }
    }

    private static func complete(_ userdata: UnsafeMutableRawPointer?, _ result: Result<UInt32, Error>) {
        guard let userdata else { return }
        let op = Unmanaged<PendingOperation>.fromOpaque(userdata).takeUnretainedValue()
        op.connection.finish(op, result)
    }

    private func finish(_ op: PendingOperation, _ result: Result<UInt32, Error>) {
        guard pending.removeValue(forKey: ObjectIdentifier(op)) != nil else { return }
        Unmanaged.passUnretained(op).release()
        op.continuation.resume(with: result)
    }

    private func contextStateChanged(_ ctx: OpaquePointer) {
        guard ctx == context else { return }
        let state = pa_context_get_state(ctx)
        if state == PA_CONTEXT_READY {
            setState(.ready)
            let waiters = connectWaiters
            connectWaiters = []
            waiters.forEach { $0.resume() }
        } else if state == PA_CONTEXT_FAILED || state == PA_CONTEXT_TERMINATED {
            let reason = Self.errorString(ctx)
            failAll(PulseError.notConnected("\(server): \(reason)"))
            setState(.failed(reason))
        }
    }

    /// Disconnects and frees the current context; call with the lock held.
    private func dropContext(reason: String) {
        guard let ctx = context else { return }
        context = nil
        pa_context_set_state_callback(ctx, nil, nil)
        pa_context_disconnect(ctx)
        pa_context_unref(ctx)
        failAll(PulseError.notConnected("\(server): \(reason)"))
        if currentState != .disconnected { currentState = .disconnected }
    }

    private func failAll(_ error: PulseError) {
        let ops = pending.values
        pending = [:]
        for op in ops {
            Unmanaged.passUnretained(op).release()
            op.continuation.resume(throwing: error)
        }
        let waiters = connectWaiters
        connectWaiters = []
        waiters.forEach { $0.resume(throwing: error) }
    }

    private func setState(_ state: State) {
        guard state != currentState else { return }
        currentState = state
        onStateChange?(state)
    }

    /// Module arguments are split on whitespace and accept quotes; a sink name is restricted to
    /// a safe alphabet so it cannot smuggle in extra arguments.
    static func validate(name: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= 100 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || $0 == "_" || $0 == "-" || $0 == "."
        }
        if !ok { throw PulseError.invalidName("\(name.debugDescription): use letters, digits, '_', '-', '.'") }
    }
}
