/// Why the pool refuses an operator request on one VM. The API answers each with a 409
/// (`JSONErrorMiddleware`); an unknown VM is `StoreError.vmNotFound` (404).
package enum PoolError: Error, Equatable, CustomStringConvertible {
    /// Its domain does not run (pending, or no longer live).
    case vmNotRunning(Int64, VMState)
    /// Booting: its agent has not said hello yet, so a retry later may succeed.
    case vmNotReady(Int64)

    /// The API's error code.
    package var code: String {
        switch self {
        case .vmNotRunning: return "vm_not_running"
        case .vmNotReady: return "vm_not_ready"
        }
    }

    package var description: String {
        switch self {
        case .vmNotRunning(let id, let state): return "VM \(id) is \(state.rawValue)"
        case .vmNotReady(let id): return "VM \(id) is booting: its agent has not said hello yet"
        }
    }
}
