import Foundation
import Libvirt
import Logging
import NIOPosix
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The generic VMs' role, run by the engine, against libvirt's test driver (real libvirt code, no guests run) and
/// a real store and image store: start, suspend, resume, a domain lost behind its back, stop
/// with save, destroy, orphans. Generic VMs here run no agent (no guest would answer).
@Suite struct MachineRoleTests {
    struct Rig {
        let store: Store
        let libvirt: LibvirtClient
        let role: MachineRole
        let engine: VMEngine
        let images: ImageStore
        let dir: String

        func spec(save: String? = nil) -> MachineSpec {
            MachineSpec.plain(hda: .stored("base.qcow2"), memoryMiB: 128, hdaSaveTo: save)
        }

        /// Passes until `condition` holds (the reconciler's actions run as tasks).
        func settle(_ what: String, _ condition: () async throws -> Bool) async throws {
            for _ in 0..<200 {
                await engine.pass()
                if try await condition() { return }
                try await Task.sleep(for: .milliseconds(20))
            }
            Issue.record("never settled: \(what)")
        }

        func status(_ id: Int64) async throws -> MachineStatus? { try await store.machine(id)?.status }
    }

    static func rig() async throws -> Rig {
        let (store, dir) = try makeStore()
        let state = StateDirectory(root: dir)
        try state.prepare()
        let images = ImageStore(root: state.imagesDir)
        _ = try await VMCloudCore.runTool("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", images.path("base.qcow2"), "16M"])
        let libvirt = LibvirtClient(uri: "test:///default")
        try await libvirt.connect()
        let agents = GuestAgents(group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        let trigger = PassTrigger()
        let role = MachineRole(
            store: store, libvirt: libvirt, state: state, disks: MachineDisks(images: images, qemuImg: "/usr/bin/qemu-img"),
            network: .user, agents: agents, trigger: trigger, logger: Logger(label: "test"))
        let engine = VMEngine(store: store, libvirt: libvirt, roles: [role], agents: agents, trigger: trigger, pollInterval: 3600,
                              logger: Logger(label: "test"))
        return Rig(store: store, libvirt: libvirt, role: role, engine: engine, images: images, dir: dir)
    }

    @Test func drivesAMachineThroughItsLifecycle() async throws {
        let rig = try await Self.rig()
        defer { try? FileManager.default.removeItem(atPath: rig.dir) }
        let machine = try await rig.store.createMachine(name: "m1", spec: rig.spec(save: "out/m1.qcow2"))
        let id = machine.id!
        try await rig.settle("running") { try await rig.status(id) == .running }
        #expect(try await rig.libvirt.domainState(name: machine.domainName) == .running)
        #expect(FileManager.default.fileExists(atPath: rig.role.files(id).overlay(.hda)))

        try await rig.store.setDesired(machine: id, .suspended)
        try await rig.settle("suspended") { try await rig.status(id) == .suspended }
        #expect(try await rig.libvirt.domainState(name: machine.domainName) == .paused)
        try await rig.store.setDesired(machine: id, .running)
        try await rig.settle("resumed") { try await rig.status(id) == .running }
        #expect(try await rig.libvirt.domainState(name: machine.domainName) == .running)

        // Lost behind the engine's back: restarted (crash policy restart), recorded.
        _ = try await rig.libvirt.destroyDomain(name: machine.domainName)
        try await rig.settle("restarted") {
            let running = try await rig.libvirt.domainState(name: machine.domainName) == .running
            let status = try await rig.status(id)
            return running && status == .running
        }
        #expect(try await rig.store.machineEvents(machine: id).contains { $0.message.contains("crash 1") })

        try await rig.store.setDesired(machine: id, .stopped)
        try await rig.settle("stopped") { try await rig.status(id) == .stopped }
        #expect(try await rig.libvirt.domainState(name: machine.domainName) == nil)
        #expect(rig.images.contains("out/m1.qcow2"), "saved on stop")
        #expect(!FileManager.default.fileExists(atPath: rig.role.files(id).directory), "its own disks are gone")

        try await rig.store.setDesired(machine: id, .destroyed)
        try await rig.settle("destroyed") { try await rig.store.machine(id)?.status == .destroyed }
        #expect(try await rig.store.setDesired(machine: id, .running) == nil, "a destroyed VM stays destroyed")
        await rig.libvirt.close()
    }

    @Test func aStartThatKeepsFailingEndsInFailedToStartAfterThreeTries() async throws {
        let rig = try await Self.rig()
        defer { try? FileManager.default.removeItem(atPath: rig.dir) }
        var spec = rig.spec()
        spec.hda = .stored("vanishing.qcow2")  // validated at creation, gone by the start
        let machine = try await rig.store.createMachine(name: "m2", spec: spec)
        let id = machine.id!
        for _ in 0..<30 {
            await rig.engine.pass()
            if try await rig.status(id) == .failedToStart { break }
            try await Task.sleep(for: .milliseconds(200))  // backoff: 1 s, then 2 s
        }
        let failed = try #require(try await rig.store.machine(id))
        #expect(failed.status == .failedToStart)
        #expect(failed.reason?.contains("no longer in the image store") == true, "\(failed.reason ?? "")")
        #expect(try await rig.store.machineEvents(machine: id).filter { $0.kind == "machine.action_failed" }.count == 3)
        await rig.libvirt.close()
    }

    @Test func destroysOrphanDomainsAndAdoptsItsOwn() async throws {
        let rig = try await Self.rig()
        defer { try? FileManager.default.removeItem(atPath: rig.dir) }
        // A domain named like ours that the store does not know (a row lost with an old store).
        let orphan = rig.role.domainPrefix + "999"
        _ = try await rig.libvirt.createTransientDomain(xml: DomainDefinition(name: orphan, type: .qemu, memoryMiB: 64, vcpus: 1).xml())
        // A row that says starting while its domain already runs (the appliance died in between).
        let machine = try await rig.store.createMachine(name: "m3", spec: rig.spec())
        _ = try await rig.libvirt.createTransientDomain(xml: DomainDefinition(name: machine.domainName, type: .qemu, memoryMiB: 64, vcpus: 1).xml())
        try await rig.settle("orphan gone, own domain adopted") {
            let gone = try await rig.libvirt.domainState(name: orphan) == nil
            let status = try await rig.status(machine.id!)
            return gone && status == .running
        }
        #expect(try await rig.store.events(limit: 50).contains { $0.kind == "machine.orphan" && $0.message.contains(orphan) })
        #expect(try await rig.store.machineEvents(machine: machine.id!).contains { $0.message.contains("adopted") })
        try await rig.store.setDesired(machine: machine.id!, .destroyed)
        try await rig.settle("destroyed") { try await rig.store.machine(machine.id!)?.status == .destroyed }
        await rig.libvirt.close()
    }

    @Test func oneMachinePerOwnerKeyUnderConcurrency() async throws {
        let rig = try await Self.rig()
        defer { try? FileManager.default.removeItem(atPath: rig.dir) }
        let spec = rig.spec()
        let made = try await withThrowingTaskGroup(of: (Int64, Bool).self) { group in
            for _ in 0..<40 {
                group.addTask {
                    let (machine, created) = try await rig.store.ensureMachine(ownerKey: "viewer:p1/codedx") { ("viewer.p1.codedx", spec, "k") }
                    return (machine.id!, created)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(made.map(\.0)).count == 1)
        #expect(made.filter(\.1).count == 1, "exactly one caller created it")
        await rig.libvirt.close()
    }
}
