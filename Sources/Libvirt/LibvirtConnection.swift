import CLibvirt

/// Owns one `virConnectPtr` and the callbacks registered on it, and frees them in `close()`.
///
/// Invariant (why `@unchecked Sendable` is sound): an instance is created, used and closed only on
/// its `LibvirtClient`'s serial queue; it is Sendable only so the client's deinit can hand it to
/// that queue for closing.
final class LibvirtConnection: @unchecked Sendable {
    /// Identifies this connection among the client's successive reconnections, so a late close
    /// notification for an old connection is ignored.
    let generation: UInt64
    private(set) var pointer: OpaquePointer?
    private var lifecycleCallbackID: Int32 = -1
    private var closeCallbackRegistered = false
    private let log: @Sendable (String) -> Void

    /// Opens `uri` (blocking) and registers the close callback, keepalive and lifecycle events.
    /// `onClose` runs on libvirt's event-loop thread: it must not block or call libvirt.
    init(
        uri: String,
        generation: UInt64,
        events: AsyncStream<LibvirtEvent>.Continuation,
        onClose: @escaping @Sendable (String) -> Void,
        log: @escaping @Sendable (String) -> Void
    ) throws {
        // Events and keepalive only work if the event loop exists before the connection does.
        LibvirtEventLoop.ensureRunning()
        self.generation = generation
        self.log = log
        guard let ptr = virConnectOpen(uri) else {
            throw LibvirtError.takeLast(operation: "virConnectOpen(\(uri))")
        }
        pointer = ptr
        do {
            try registerCloseCallback(ptr, onClose: onClose)
            setKeepAlive(ptr)
            try registerLifecycleCallback(ptr, events: events)
        } catch {
            close()
            throw error
        }
    }

    deinit {
        // Normally already closed on the client's queue; this is only a safety net.
        close()
    }

    /// False once libvirt has noticed that the remote side is gone.
    var isAlive: Bool {
        guard let pointer else { return false }
        return virConnectIsAlive(pointer) == 1
    }

    /// Deregisters the callbacks and closes the connection. Idempotent. Failures are expected
    /// when the daemon is already gone, and are only logged.
    func close() {
        guard let ptr = pointer else { return }
        pointer = nil
        let alive = virConnectIsAlive(ptr) == 1
        if lifecycleCallbackID >= 0 {
            // libvirt removes the local registration and calls the box's free callback (possibly
            // after an in-flight dispatch ends) even when telling a dead daemon fails.
            if virConnectDomainEventDeregisterAny(ptr, lifecycleCallbackID) < 0 {
                let error = LibvirtError.takeLast(operation: "virConnectDomainEventDeregisterAny")
                if alive { log("libvirt: deregistering lifecycle events: \(error)") }
            }
            lifecycleCallbackID = -1
        }
        if closeCallbackRegistered {
            // Fails harmlessly if the callback already fired (libvirt then unregistered it itself).
            if virConnectUnregisterCloseCallback(ptr, Self.closeThunk) < 0 {
                virResetLastError()
            }
            closeCallbackRegistered = false
        }
        // Must come after unregistering: a registered close callback keeps a reference on the
        // connection, so virConnectClose would not release it.
        if virConnectClose(ptr) < 0 {
            log("libvirt: virConnectClose: \(LibvirtError.takeLast(operation: "virConnectClose"))")
        }
    }

    // MARK: - Callback registration

    /// The close callback's C entry point; a static so register/unregister pass the same pointer.
    private static let closeThunk: virConnectCloseFunc = { _, reason, opaque in
        guard let opaque else { return }
        let box = Unmanaged<CloseBox>.fromOpaque(opaque).takeUnretainedValue()
        box.handler(LibvirtConnection.describeCloseReason(reason))
    }

    private func registerCloseCallback(_ ptr: OpaquePointer, onClose: @escaping @Sendable (String) -> Void) throws {
        // The retain is balanced in the free callback, which libvirt calls when the callback is
        // unregistered or after it has fired. (Drivers without close notification, e.g. test://,
        // accept the registration without keeping it; the box then leaks, a few bytes.)
        let opaque = Unmanaged.passRetained(CloseBox(handler: onClose)).toOpaque()
        let rc = virConnectRegisterCloseCallback(ptr, Self.closeThunk, opaque) { opaque in
            guard let opaque else { return }
            Unmanaged<CloseBox>.fromOpaque(opaque).release()
        }
        guard rc == 0 else {
            Unmanaged<CloseBox>.fromOpaque(opaque).release()
            throw LibvirtError.takeLast(operation: "virConnectRegisterCloseCallback")
        }
        closeCallbackRegistered = true
    }

    /// Keepalive makes a silently dead daemon (killed, hung, network gone) close the connection
    /// within ~20 s. Local drivers do not support it, which is fine.
    private func setKeepAlive(_ ptr: OpaquePointer) {
        let rc = virConnectSetKeepAlive(ptr, 5, 3)
        if rc < 0 {
            let error = LibvirtError.takeLast(operation: "virConnectSetKeepAlive")
            if error.code != Int32(VIR_ERR_NO_SUPPORT.rawValue) {
                log("libvirt: keepalive not enabled: \(error)")
            }
        }
    }

    private func registerLifecycleCallback(_ ptr: OpaquePointer, events: AsyncStream<LibvirtEvent>.Continuation) throws {
        let callback: virConnectDomainEventCallback = { _, dom, event, detail, opaque in
            guard let dom, let opaque else { return 0 }
            let box = Unmanaged<LifecycleBox>.fromOpaque(opaque).takeUnretainedValue()
            // Both calls read fields of the event's domain object: no RPC, safe on the loop thread.
            let name = virDomainGetName(dom).map { String(cString: $0) } ?? ""
            let uuid = DomainHandle.uuidString(of: dom) ?? ""
            box.events.yield(.lifecycle(domain: name, uuid: uuid, event: DomainLifecycleEvent(raw: event), detail: detail))
            return 0
        }
        let opaque = Unmanaged.passRetained(LifecycleBox(events: events)).toOpaque()
        // The register API takes the generic callback type; libvirt casts it back by event id.
        let id = virConnectDomainEventRegisterAny(
            ptr, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue),
            unsafeBitCast(callback, to: virConnectDomainEventGenericCallback.self),
            opaque
        ) { opaque in
            guard let opaque else { return }
            Unmanaged<LifecycleBox>.fromOpaque(opaque).release()
        }
        guard id >= 0 else {
            // On failure libvirt does not call the free callback.
            Unmanaged<LifecycleBox>.fromOpaque(opaque).release()
            throw LibvirtError.takeLast(operation: "virConnectDomainEventRegisterAny(LIFECYCLE)")
        }
        lifecycleCallbackID = id
    }

    private static func describeCloseReason(_ reason: Int32) -> String {
        switch reason {
        case Int32(VIR_CONNECT_CLOSE_REASON_ERROR.rawValue): return "I/O error"
        case Int32(VIR_CONNECT_CLOSE_REASON_EOF.rawValue): return "end of file from libvirtd"
        case Int32(VIR_CONNECT_CLOSE_REASON_KEEPALIVE.rawValue): return "keepalive timeout"
        case Int32(VIR_CONNECT_CLOSE_REASON_CLIENT.rawValue): return "closed by client"
        default: return "close reason \(reason)"
        }
    }
}

/// Opaque payload of the lifecycle callback; lives until libvirt's free callback.
private final class LifecycleBox: Sendable {
    let events: AsyncStream<LibvirtEvent>.Continuation
    init(events: AsyncStream<LibvirtEvent>.Continuation) { self.events = events }
}

/// Opaque payload of the close callback; lives until libvirt's free callback.
private final class CloseBox: Sendable {
    let handler: @Sendable (String) -> Void
    init(handler: @escaping @Sendable (String) -> Void) { self.handler = handler }
}
