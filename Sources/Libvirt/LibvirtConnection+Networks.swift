import CLibvirt
import Glibc

/// Virtual networks (libvirt's NAT network for the guests). Blocking; called on the client's queue.
extension LibvirtConnection {
    /// Starts the named network if it is defined but not running; throws if it is not defined.
    /// Returns true when it had to be started.
    func ensureNetworkActive(name: String) throws -> Bool {
        guard let conn = pointer else { throw LibvirtClientError.notConnected }
        guard let network = virNetworkLookupByName(conn, name) else {
            throw LibvirtError.takeLast(operation: "virNetworkLookupByName(\(name))")
        }
        defer { virNetworkFree(network) }
        switch virNetworkIsActive(network) {
        case 1: return false
        case 0:
            guard virNetworkCreate(network) == 0 else { throw LibvirtError.takeLast(operation: "virNetworkCreate(\(name))") }
            return true
        default:
            throw LibvirtError.takeLast(operation: "virNetworkIsActive(\(name))")
        }
    }
}

extension LibvirtConnection {
    /// Whether the named network runs; throws if it is not defined. Changes nothing.
    func networkIsActive(name: String) throws -> Bool {
        guard let conn = pointer else { throw LibvirtClientError.notConnected }
        guard let network = virNetworkLookupByName(conn, name) else {
            throw LibvirtError.takeLast(operation: "virNetworkLookupByName(\(name))")
        }
        defer { virNetworkFree(network) }
        let active = virNetworkIsActive(network)
        guard active >= 0 else { throw LibvirtError.takeLast(operation: "virNetworkIsActive(\(name))") }
        return active == 1
    }
}

extension LibvirtConnection {
    /// The host bridge of the named network (virbr0 for "default"); throws if it is not defined.
    func networkBridgeName(name: String) throws -> String {
        guard let conn = pointer else { throw LibvirtClientError.notConnected }
        guard let network = virNetworkLookupByName(conn, name) else {
            throw LibvirtError.takeLast(operation: "virNetworkLookupByName(\(name))")
        }
        defer { virNetworkFree(network) }
        guard let bridge = virNetworkGetBridgeName(network) else {
            throw LibvirtError.takeLast(operation: "virNetworkGetBridgeName(\(name))")
        }
        defer { free(bridge) }
        return String(cString: bridge)
    }
}
