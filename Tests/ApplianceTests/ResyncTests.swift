import Foundation
import Libvirt
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The engine's first pass (it compares the store with libvirt), on libvirt's own test driver: no
/// guest needs to run for orphans and vanished domains.
@Suite struct ResyncTests {
    @Test func orphansAreDestroyedAndVMsWithoutADomainFail() async throws {
        let harness = try await APIHarness()
        defer { try? FileManager.default.removeItem(atPath: harness.directory) }
        let store = harness.pool.store
        let hypervisor = harness.pool.hypervisor

        // A VM the store believes idle, whose domain does not exist.
        let vanished = try await makeIdleVM(store)
        // A domain carrying our instance's metadata that the store does not know.
        let orphan = DomainDefinition(
            name: "\(hypervisor.domainPrefix)-vm4242", type: .qemu, memoryMiB: 64, vcpus: 1, userNetwork: false, videoModel: nil,
            metadata: .init(namespaceURI: GuestDomain.metadataNamespace, prefix: "vmcloud", element: "vm",
                            attributes: [.init("appliance", store.instanceId), .init("id", "4242")]))
        _ = try await harness.libvirt.createTransientDomain(xml: orphan.xml())
        // Another appliance's domain on the same host: never touched.
        var foreign = orphan
        foreign.name = "vmcloud-someone-else-vm1"
        foreign.metadata?.attributes = [.init("appliance", "someone-else"), .init("id", "1")]
        _ = try await harness.libvirt.createTransientDomain(xml: foreign.xml())
        // A generic VM's domain that no machine row knows: the same pass destroys it too.
        let machineOrphan = DomainDefinition(name: "\(store.machineDomainPrefix)4343", type: .qemu, memoryMiB: 64, vcpus: 1)
        _ = try await harness.libvirt.createTransientDomain(xml: machineOrphan.xml())

        #expect(try await hypervisor.ourDomains() == [orphan.name: 4242])
        await harness.engine.pass()

        let names = Set(try await harness.libvirt.listDomains().map(\.name))
        #expect(!names.contains(orphan.name), "the orphan is destroyed")
        #expect(!names.contains(machineOrphan.name), "the generic VM's orphan is destroyed in the same pass")
        #expect(names.contains(foreign.name), "another appliance's domain is left alone")
        #expect(try await store.vm(vanished)?.state == .failed)
        let events = try await store.events()
        #expect(events.contains { $0.kind == "vm.orphan" && $0.message.contains(orphan.name) })
        #expect(events.contains { $0.kind == "machine.orphan" && $0.message.contains(machineOrphan.name) })
        #expect(events.contains { $0.kind == "vm.failed" && $0.vmId == vanished })
        _ = try await harness.libvirt.destroyDomain(name: foreign.name)
        await harness.libvirt.close()
    }
}
