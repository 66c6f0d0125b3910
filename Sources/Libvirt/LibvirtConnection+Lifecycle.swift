import CLibvirt
import Glibc

/// Pausing, resuming, graceful shutdown, state and live media changes of running domains.
/// Called only on the client's queue (see `LibvirtConnection+Domains.swift`).
extension LibvirtConnection {
    private func domain(_ name: String) throws -> DomainHandle {
        guard let pointer else { throw LibvirtClientError.notConnected }
        return try DomainHandle.require(pointer, name: name)
    }

    func suspendDomain(name: String) throws {
        let dom = try domain(name)
        guard virDomainSuspend(dom.pointer) == 0 else { throw LibvirtError.takeLast(operation: "virDomainSuspend(\(name))") }
    }

    func resumeDomain(name: String) throws {
        let dom = try domain(name)
        guard virDomainResume(dom.pointer) == 0 else { throw LibvirtError.takeLast(operation: "virDomainResume(\(name))") }
    }

    /// Asks the guest to power off (ACPI); returns at once, the guest may ignore it.
    func shutdownDomain(name: String) throws {
        let dom = try domain(name)
        guard virDomainShutdown(dom.pointer) == 0 else { throw LibvirtError.takeLast(operation: "virDomainShutdown(\(name))") }
    }

    /// The domain's state, or nil when no such domain exists.
    func domainState(name: String) throws -> DomainState? {
        guard let pointer else { throw LibvirtClientError.notConnected }
        guard let dom = try DomainHandle.lookup(pointer, name: name) else { return nil }
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(dom.pointer, &state, &reason, 0) == 0 else {
            let error = LibvirtError.takeLast(operation: "virDomainGetState(\(name))")
            if error.isNoSuchDomain { return nil }
            throw error
        }
        return DomainState(raw: state)
    }

    /// Replaces the device described by `deviceXML` (a cdrom's media) on the live domain.
    func updateDevice(name: String, deviceXML: String) throws {
        let dom = try domain(name)
        let flags = UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)
        guard virDomainUpdateDeviceFlags(dom.pointer, deviceXML, flags) == 0 else {
            throw LibvirtError.takeLast(operation: "virDomainUpdateDeviceFlags(\(name))")
        }
    }
}

extension LibvirtClient {
    /// Pauses a running domain's vCPUs (virDomainSuspend); memory stays allocated.
    public func suspendDomain(name: String) async throws {
        try await perform { try $0.suspendDomain(name: name) }
    }

    public func resumeDomain(name: String) async throws {
        try await perform { try $0.resumeDomain(name: name) }
    }

    /// Sends the guest an ACPI power-button press (virDomainShutdown).
    public func shutdownDomain(name: String) async throws {
        try await perform { try $0.shutdownDomain(name: name) }
    }

    /// virDomainGetState; nil when the domain does not exist.
    public func domainState(name: String) async throws -> DomainState? {
        try await perform { try $0.domainState(name: name) }
    }

    /// virDomainUpdateDeviceFlags on the live domain (e.g. change or eject a cdrom's media).
    public func updateDevice(name: String, deviceXML: String) async throws {
        try await perform { try $0.updateDevice(name: name, deviceXML: deviceXML) }
    }
}
