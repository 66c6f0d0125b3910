import Foundation
import Libvirt
import Testing
@testable import Appliance

/// The reaper on a real store and state directory (libvirt's test driver: no domain of ours
/// runs): files of VMs that are gone are removed and logged, a live VM's files are kept.
@Suite struct ReaperTests {
    @Test func removesLeftoversOfGoneVMsOnly() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = StateDirectory(root: dir)
        try state.prepare()
        let libvirt = LibvirtClient(uri: "test:///default")
        try await libvirt.connect()
        let hypervisor = Hypervisor(
            libvirt: libvirt, state: state, image: GuestImage(directory: dir, disk: dir + "/disk.qcow2", kernel: nil, initrd: nil, cmdline: nil),
            accelerator: .tcg, instanceId: store.instanceId, memoryMiB: 128, vcpus: 1)
        let live = try await makeIdleVM(store)
        let gone: Int64 = live + 41
        func files(_ id: Int64) -> [String] {
            [state.overlay(vm: id), state.agentSocket(vm: id), state.vncSocket(vm: id), state.consoleLog(vm: id)]
        }
        let unrelated = [state.runDir + "/notes.txt", state.vmsDir + "/vmX.qcow2"]
        for path in files(live) + files(gone) + unrelated {
            #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
        }

        let removed = try await Reaper(store: store, hypervisor: hypervisor).sweep()
        #expect(Set(removed) == Set(files(gone)))
        for path in files(gone) { #expect(!FileManager.default.fileExists(atPath: path), "\(path)") }
        for path in files(live) + unrelated { #expect(FileManager.default.fileExists(atPath: path), "\(path)") }
        let events = try await store.events().filter { $0.kind == "reaper.removed" }
        #expect(events.count == 4)
        #expect(try await Reaper(store: store, hypervisor: hypervisor).sweep().isEmpty, "nothing left the second time")
        await libvirt.close()
    }

    @Test func onlyVMFileNamesAreRead() {
        #expect(Reaper.vmId(in: "vm12.qcow2", suffixes: [".qcow2"]) == 12)
        #expect(Reaper.vmId(in: "vm12.vnc.sock", suffixes: [".agent.sock", ".vnc.sock"]) == 12)
        #expect(Reaper.vmId(in: "vmx.qcow2", suffixes: [".qcow2"]) == nil)
        #expect(Reaper.vmId(in: "disk.qcow2", suffixes: [".qcow2"]) == nil)
        #expect(Reaper.vmId(in: "vm12.qcow2.tmp", suffixes: [".qcow2"]) == nil)
    }
}
