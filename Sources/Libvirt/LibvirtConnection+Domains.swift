import CLibvirt
import Glibc

/// The synchronous (blocking) domain operations. Called only on the client's queue, so each
/// libvirt call and the read of its per-thread error happen on the same thread.
extension LibvirtConnection {
    private func connection() throws -> OpaquePointer {
        guard let pointer else { throw LibvirtClientError.notConnected }
        return pointer
    }

    func createTransientDomain(xml: String) throws -> DomainInfo {
        let conn = try connection()
        guard let ptr = virDomainCreateXML(conn, xml, 0) else {
            throw LibvirtError.takeLast(operation: "virDomainCreateXML")
        }
        return try DomainHandle(ptr).info()
    }

    func destroyDomain(name: String) throws -> Bool {
        let conn = try connection()
        guard let dom = try DomainHandle.lookup(conn, name: name) else { return false }
        let persistent = virDomainIsPersistent(dom.pointer) == 1
        if virDomainIsActive(dom.pointer) == 1, virDomainDestroy(dom.pointer) < 0 {
            let error = LibvirtError.takeLast(operation: "virDomainDestroy(\(name))")
            // It may have stopped (and, if transient, vanished) between the check and the call.
            let stillActive = virDomainIsActive(dom.pointer) == 1
            virResetLastError()
            if stillActive { throw error }
            if !persistent { return true }
        }
        if persistent {
            let flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.rawValue | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA.rawValue
            if virDomainUndefineFlags(dom.pointer, flags) < 0 {
                let error = LibvirtError.takeLast(operation: "virDomainUndefineFlags(\(name))")
                if !error.isNoSuchDomain { throw error }
            }
        }
        return true
    }

    func listDomains() throws -> [DomainInfo] {
        let conn = try connection()
        var list: UnsafeMutablePointer<OpaquePointer?>?
        // flags 0: active and inactive, persistent and transient.
        let count = virConnectListAllDomains(conn, &list, 0)
        guard count >= 0, let list else {
            throw LibvirtError.takeLast(operation: "virConnectListAllDomains")
        }
        // Take ownership of every element before anything can throw, then free the array.
        let handles = (0..<Int(count)).compactMap { list[$0].map(DomainHandle.init) }
        free(list)
        var infos: [DomainInfo] = []
        for handle in handles {
            do {
                infos.append(try handle.info())
            } catch let error as LibvirtError where error.isNoSuchDomain {
                continue  // a transient domain that ended while we were listing
            }
        }
        return infos
    }

    func metadata(domain name: String, namespaceURI: String) throws -> String? {
        let dom = try DomainHandle.require(try connection(), name: name)
        let type = Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue)
        guard let ptr = virDomainGetMetadata(dom.pointer, type, namespaceURI, 0) else {
            let error = LibvirtError.takeLast(operation: "virDomainGetMetadata(\(name))")
            if error.code == Int32(VIR_ERR_NO_DOMAIN_METADATA.rawValue) { return nil }
            throw error
        }
        return DomainHandle.takeString(ptr)
    }

    func xmlDescription(domain name: String) throws -> String {
        let dom = try DomainHandle.require(try connection(), name: name)
        guard let ptr = virDomainGetXMLDesc(dom.pointer, 0) else {
            throw LibvirtError.takeLast(operation: "virDomainGetXMLDesc(\(name))")
        }
        return DomainHandle.takeString(ptr)
    }
}
