import CLibvirt
import Glibc

/// Owns one `virDomainPtr` reference and frees it on deinit. Used only on the client's queue.
final class DomainHandle {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        virDomainFree(pointer)
    }

    /// Looks a domain up by name; nil (not an error) when libvirt says it does not exist.
    static func lookup(_ conn: OpaquePointer, name: String) throws -> DomainHandle? {
        if let ptr = virDomainLookupByName(conn, name) {
            return DomainHandle(ptr)
        }
        let error = LibvirtError.takeLast(operation: "virDomainLookupByName(\(name))")
        if error.isNoSuchDomain { return nil }
        throw error
    }

    /// Like `lookup` but a missing domain is an error carrying libvirt's message.
    static func require(_ conn: OpaquePointer, name: String) throws -> DomainHandle {
        if let ptr = virDomainLookupByName(conn, name) {
            return DomainHandle(ptr)
        }
        throw LibvirtError.takeLast(operation: "virDomainLookupByName(\(name))")
    }

    static func uuidString(of dom: OpaquePointer) -> String? {
        // VIR_UUID_STRING_BUFLEN is 37.
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            guard let base = buffer.baseAddress, virDomainGetUUIDString(dom, base) == 0 else {
                virResetLastError()
                return nil
            }
            return String(cString: base)
        }
    }

    func info() throws -> DomainInfo {
        guard let namePtr = virDomainGetName(pointer) else {
            throw LibvirtError.takeLast(operation: "virDomainGetName")
        }
        let name = String(cString: namePtr)
        guard let uuid = Self.uuidString(of: pointer) else {
            throw LibvirtError(code: -1, domain: -1, message: "no UUID for domain \(name)", operation: "virDomainGetUUIDString")
        }
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(pointer, &state, &reason, 0) == 0 else {
            throw LibvirtError.takeLast(operation: "virDomainGetState(\(name))")
        }
        let rawID = virDomainGetID(pointer)  // (unsigned)-1 when inactive
        let persistent = virDomainIsPersistent(pointer)
        guard persistent >= 0 else {
            throw LibvirtError.takeLast(operation: "virDomainIsPersistent(\(name))")
        }
        return DomainInfo(
            name: name, uuid: uuid, state: DomainState(raw: state),
            id: rawID == UInt32.max ? nil : rawID, persistent: persistent == 1
        )
    }

    /// Copies a libvirt-allocated C string and frees it.
    static func takeString(_ ptr: UnsafeMutablePointer<CChar>) -> String {
        defer { free(ptr) }
        return String(cString: ptr)
    }
}
