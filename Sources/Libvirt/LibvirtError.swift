import CLibvirt

/// An error reported by libvirt, copied out of libvirt's per-thread error slot.
///
/// libvirt keeps its "last error" in thread-local storage, so `LibvirtError.takeLast` must be
/// called on the same thread, right after the failing call. The client guarantees this by making
/// each libvirt call and its error read inside one block on its serial queue.
public struct LibvirtError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `virErrorNumber` (e.g. `VIR_ERR_NO_DOMAIN` = 42).
    public let code: Int32
    /// `virErrorDomain`: which part of libvirt raised it (e.g. `VIR_FROM_QEMU`).
    public let domain: Int32
    /// libvirt's human-readable message (copied; libvirt's buffer is reset afterwards).
    public let message: String
    /// The wrapper operation that failed, for context in logs.
    public let operation: String

    public init(code: Int32, domain: Int32, message: String, operation: String) {
        self.code = code
        self.domain = domain
        self.message = message
        self.operation = operation
    }

    /// True when libvirt says the domain does not exist.
    public var isNoSuchDomain: Bool { code == Int32(VIR_ERR_NO_DOMAIN.rawValue) }
    /// The daemon is gone or unreachable (the first call after libvirtd died fails like this,
    /// before the client notices and starts reconnecting).
    public var isConnectionFailure: Bool {
        [VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC, VIR_ERR_NO_CONNECT, VIR_ERR_INVALID_CONN].map { Int32($0.rawValue) }.contains(code)
    }

    public var description: String {
        "libvirt error in \(operation) (code \(code), domain \(domain)): \(message)"
    }

    /// Copies and clears the calling thread's last libvirt error.
    static func takeLast(operation: String) -> LibvirtError {
        defer { virResetLastError() }
        guard let err = virGetLastError() else {
            return LibvirtError(code: -1, domain: -1, message: "unknown libvirt error", operation: operation)
        }
        let message = err.pointee.message.map { String(cString: $0) } ?? "unknown libvirt error"
        return LibvirtError(code: err.pointee.code, domain: err.pointee.domain, message: message, operation: operation)
    }
}

/// Whether `error` means libvirtd is down or restarting (the client's own wait for a reconnect
/// ran out, or libvirt's connection failed): the caller may retry, or answer 503.
public func isLibvirtUnreachable(_ error: any Error) -> Bool {
    error is LibvirtClientError || (error as? LibvirtError)?.isConnectionFailure == true
}

/// Errors raised by the Swift client itself rather than by libvirt.
public enum LibvirtClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `connect()` has not succeeded yet.
    case notConnected
    /// `close()` was called.
    case closed
    /// The connection was lost and not re-established within the client's reconnect wait.
    case disconnected(reason: String)

    public var description: String {
        switch self {
        case .notConnected: return "libvirt client is not connected (call connect() first)"
        case .closed: return "libvirt client is closed"
        case .disconnected(let reason): return "libvirt connection lost and not re-established in time: \(reason)"
        }
    }
}
