import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMCloud
@testable import VMCloudCore

/// A fresh directory that QEMU (user libvirt-qemu) can traverse, removed by the caller.
func makeTemporaryDirectory(_ label: String) throws -> String {
    let path = "/var/tmp/vmcloud-test-\(label)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o755])
    return path
}

func makeStore() throws -> (Store, String) {
    let dir = try makeTemporaryDirectory("store")
    return (try Store(path: dir + "/appliance.sqlite"), dir)
}

/// Drives a VM row through the agent's hello, as the pool does when a guest comes up.
func makeIdleVM(_ store: Store) async throws -> Int64 {
    let vm = try await store.insertPendingVM(domainPrefix: "vmcloud-test")
    try await store.transition(vm: vm.id!, .domainStarted)
    _ = try await store.agentHello(vm: vm.id!, ip: "10.0.2.15", agentVersion: "test")
    return vm.id!
}

/// The repository root, found from this file's path.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
    }
    fatalError("Package.swift not found above \(#filePath)")
}()

/// A batch of `size` with `size` idle VMs granted to it (state `preparing`).
func makeGrantedBatch(_ store: Store, size: Int, homepage: String = "http://a.test/") async throws -> (BatchRecord, [Int64]) {
    let batch = try await store.createBatch(size: size, homepage: homepage)
    var vms: [Int64] = []
    for _ in 0..<size { vms.append(try await makeIdleVM(store)) }
    let granted = try await store.grantIdleVMs().map(\.vmId)
    precondition(granted == vms, "grants go to the new batch in VM order")
    return (batch, vms)
}

/// Calls `body` with a new TCP socket and 127.0.0.1:`port` as a `sockaddr` (to bind, connect or
/// read back with getsockname); the caller closes the socket.
func withLoopbackSocket<T>(port: Int, _ body: (Int32, UnsafeMutablePointer<sockaddr>, socklen_t) throws -> T) rethrows -> (fd: Int32, result: T) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = try withUnsafeMutablePointer(to: &address) {
        try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return (fd, result)
}
