import ChildProcess
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Generic VMs (`/v1/vms`) booted from the test image under TCG through the real binary:
/// create, suspend, resume, modify (save target, cdrom), stop with save, a save that cannot be
/// written, crash restart, destroy, and bad specs.
@Suite(.serialized) struct MachineLifecycleTests {
    /// Copies the test image into the appliance's image store as `test/...`.
    static func stockImageStore(_ run: ApplianceRun) throws -> String {
        let store = run.appliance.stateDir + "/images"
        try FileManager.default.createDirectory(atPath: store + "/test", withIntermediateDirectories: true)
        for file in ["vmlinuz", "initrd.img", "disk.qcow2"] {
            try FileManager.default.copyItem(atPath: ApplianceProcess.testImage + "/" + file, toPath: store + "/test/" + file)
        }
        return store
    }

    static func spec(_ name: String, _ extra: [String: Any] = [:]) -> [String: Any] {
        let cmdline = (try? String(contentsOfFile: ApplianceProcess.testImage + "/cmdline", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "console=ttyS0"
        return ["name": name, "hypervisor": "qemu", "cpu_count": 1, "mem_size": 256, "sys_arch": "x86_64",
                "hda_image": "test/disk.qcow2", "kernel_image": "test/vmlinuz", "initrd_image": "test/initrd.img",
                "cmdline": cmdline, "stop_grace": 0].merging(extra) { $1 }
    }

    static func status(_ api: HTTPTestClient, _ ref: String) async throws -> [String: Any] {
        try await api.object("GET", "/v1/vms/\(ref)")
    }

    static func waitStatus(_ api: HTTPTestClient, _ ref: String, _ wanted: String, timeout: TimeInterval = 120) async throws {
        try await eventually("\(ref) \(wanted)", timeout: timeout) { try await status(api, ref)["status"] as? String == wanted }
    }

    static func events(_ api: HTTPTestClient, _ ref: String) async throws -> [[String: Any]] {
        let (_, answer) = try await api.send("GET", "/v1/vms/\(ref)/events")
        return ((answer as? [[String: Any]]) ?? []).reversed()
    }

    static func virsh(_ arguments: String...) throws -> String {
        try runTool("/usr/bin/virsh", ["-c", "qemu:///system"] + arguments)
    }

    @Test func lifecycleWithSaveSuspendCdromAndDestroy() async throws {
        try await withAppliance("machines") { run in
            let api = run.api
            let store = try Self.stockImageStore(run)
            _ = FileManager.default.createFile(atPath: store + "/test/cd.iso", contents: Data(repeating: 0, count: 1 << 20))

            let created = try await api.object("POST", "/v1/vms", Self.spec("gen1", ["hda_save_to": "saved/gen1.qcow2"]), status: 201)
            let uuid = try #require(created["uuid"] as? String)
            #expect(created["status"] as? String == "starting")
            #expect(created["success"] as? Bool == true)

            // The agent's hello moves it from installing to running, with the guest's IP.
            try await Self.waitStatus(api, "gen1", "running")
            let running = try await Self.status(api, uuid)
            #expect(running["name"] as? String == "gen1", "a uuid addresses the same VM as its name")
            #expect((running["vnc"] as? String)?.hasSuffix(".vnc.sock") == true)
            let domain = try #require(running["domain"] as? String)
            let lease = try NATNetwork.leasedIP(mac: try NATNetwork.mac(domain: domain))
            #expect(lease != nil && running["ip"] as? String == lease, "its IP is dnsmasq's lease for its MAC: \(running["ip"] ?? "nil") vs \(lease ?? "none")")
            #expect(try Self.virsh("domstate", domain).contains("running"))
            let kinds = try await Self.events(api, uuid).compactMap { $0["kind"] as? String }
            #expect(kinds.starts(with: ["machine.created", "machine.installing", "machine.running"]), "\(kinds)")

            // Suspend and resume: libvirt pauses and resumes the domain.
            _ = try await api.object("POST", "/v1/vms/gen1/suspend")
            try await Self.waitStatus(api, uuid, "suspended", timeout: 20)
            #expect(try Self.virsh("domstate", domain).contains("paused"))
            _ = try await api.object("POST", "/v1/vms/\(uuid)/resume")
            try await Self.waitStatus(api, uuid, "running", timeout: 20)
            #expect(try Self.virsh("domstate", domain).contains("running"))

            // Modify: insert and eject the cdrom live.
            let inserted = try await api.object("PATCH", "/v1/vms/gen1", ["cd_image": "test/cd.iso"])
            #expect(inserted["cd_image"] as? String == "test/cd.iso")
            #expect(try Self.virsh("domblklist", domain).contains("cd.iso"))
            _ = try await api.object("PATCH", "/v1/vms/gen1", ["cd_image": ""])
            #expect(!(try Self.virsh("domblklist", domain).contains("cd.iso")))

            // Stop: the domain is powered off and the disk copied to its save target.
            _ = try await api.object("POST", "/v1/vms/gen1/stop")
            try await Self.waitStatus(api, uuid, "stopped", timeout: 60)
            #expect(!(try virshDomainNames(prefix: run.prefix).contains(domain)))
            let saved = store + "/saved/gen1.qcow2"
            #expect(FileManager.default.fileExists(atPath: saved))
            let info = try runTool("/usr/bin/qemu-img", ["info", "--output=json", saved])
            #expect(!info.contains("backing-filename"), "the saved disk stands alone: \(info)")
            _ = try runTool("/usr/bin/qemu-img", ["compare", "-q", saved, store + "/test/disk.qcow2"])
            #expect(try await Self.events(api, uuid).contains { $0["kind"] as? String == "machine.saved" })

            // Start again, then destroy: domain and disks go, no save.
            _ = try await api.object("POST", "/v1/vms/gen1/start")
            try await Self.waitStatus(api, uuid, "running")
            let savedAt = try FileManager.default.attributesOfItem(atPath: saved)[.modificationDate] as? Date
            _ = try await api.object("DELETE", "/v1/vms/gen1")
            try await Self.waitStatus(api, uuid, "destroyed", timeout: 30)
            #expect(!(try virshDomainNames(prefix: run.prefix).contains(domain)))
            #expect(!FileManager.default.fileExists(atPath: run.appliance.stateDir + "/machines/m\(domain.split(separator: "-").last!.dropFirst())"))
            #expect(try FileManager.default.attributesOfItem(atPath: saved)[.modificationDate] as? Date == savedAt, "destroy does not save")
            let (gone, _) = try await api.send("POST", "/v1/vms/\(uuid)/start")
            #expect(gone == 409, "a destroyed VM cannot be started again")
            // The name is free again once its VM is destroyed.
            _ = try await api.object("POST", "/v1/vms", Self.spec("gen1", ["run_agent": false]), status: 201)
            _ = try await api.object("DELETE", "/v1/vms/gen1")
        }
    }

    @Test func unwritableSaveTargetEndsInFailedToSaveAndACrashRestarts() async throws {
        try await withAppliance("machines-fail", arguments: ["--reconcile-interval", "60"], environment: ["VMCLOUD_TEST_NO_QEMU_PID_POLL": "1"]) { run in
            let api = run.api
            let store = try Self.stockImageStore(run)
            // A regular file where the target's folder should be: every try fails, even as root.
            _ = FileManager.default.createFile(atPath: store + "/blocker", contents: Data("x".utf8))
            // The disk comes over HTTP (downloaded with progress into the VM's folder).
            let server = try HTTPFileServer(directory: ApplianceProcess.testImage)
            defer { server.stop() }
            let created = try await api.object("POST", "/v1/vms", Self.spec("gen2", [
                "hda_image": server.url("disk.qcow2"), "hda_save_to": "blocker/gen2.qcow2"]), status: 201)
            let uuid = try #require(created["uuid"] as? String)
            try await Self.waitStatus(api, uuid, "running")
            #expect(try await Self.events(api, uuid).contains { ($0["kind"] as? String) == "machine.downloaded" })

            // kill -9 of its QEMU: noticed through libvirt's event (the pid-file poll is off and the
            // reconciler's own pass comes once a minute), restarted on the same disks.
            let domain = try #require(try await Self.status(api, uuid)["domain"] as? String)
            _ = try runTool("/usr/bin/pkill", ["-KILL", "-f", "guest=\(domain),"])
            let killed = Date()
            try await eventually("crash recorded", timeout: 20) {
                try await Self.events(api, uuid).contains { ($0["message"] as? String)?.contains("crash 1") == true }
            }
            // libvirt's event for a killed QEMU takes about 1-2 s here (the pid-file poll, off in
            // this test, is what makes it 200 ms in production); without the event it is 60 s.
            let noticed = Date().timeIntervalSince(killed)
            #expect(noticed < 10, "crash noticed in \(noticed) s")
            try await Self.waitStatus(api, uuid, "running")

            _ = try await api.object("POST", "/v1/vms/\(uuid)/stop")
            try await Self.waitStatus(api, uuid, "failed to save", timeout: 60)
            let failed = try await Self.status(api, uuid)
            #expect((failed["reason"] as? String)?.contains("failed 3 times") == true, "\(failed)")
            let tries = try await Self.events(api, uuid).filter { $0["kind"] as? String == "machine.save_failed" }
            #expect(tries.count == 3)
            let parked = run.appliance.stateDir + "/failed_to_save/gen2-m\(domain.split(separator: "-").last!.dropFirst())/hda.qcow2"
            #expect(FileManager.default.fileExists(atPath: parked), "the disk is kept in failed_to_save: \(parked)")
            #expect(!(try virshDomainNames(prefix: run.prefix).contains(domain)))
        }
    }

    /// The appliance killed between a domain's start and its agent attach, then started again:
    /// the VM keeps its domain, and the restarted appliance attaches its agent (so the guest's
    /// hello moves it to running with its IP) instead of leaving it installing for ever.
    @Test func aRestartAttachesTheAgentOfARunningDomain() async throws {
        let parent = try makeTemporaryDirectory("machine-gates")
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let gates = try TestGates(in: parent, holding: ["machine-started"])
        try await withAppliance("machines-restart", environment: gates.environment) { run in
            let api = run.api
            _ = try Self.stockImageStore(run)
            let created = try await api.object("POST", "/v1/vms", Self.spec("gen3"), status: 201)
            let uuid = try #require(created["uuid"] as? String)
            try await gates.reached("machine-started")
            #expect(try await Self.status(api, uuid)["status"] as? String == "installing")
            let domains = try virshDomainNames(prefix: run.prefix + "m")
            #expect(domains.count == 1, "the domain runs: \(domains)")

            run.appliance.kill9()
            try await run.appliance.start()
            try await Self.waitStatus(api, uuid, "running", timeout: 90)
            let running = try await Self.status(api, uuid)
            #expect(running["ip"] as? String != nil, "\(running)")
            #expect(try virshDomainNames(prefix: run.prefix + "m") == domains, "the same domain, adopted")
        }
    }

    @Test func badSpecsAreRefusedClearly() async throws {
        try await withAppliance("machines-bad") { run in
            let api = run.api
            _ = try Self.stockImageStore(run)
            let cases: [([String: Any], Int, String)] = [
                (Self.spec("x1", ["hypervisor": "xen"]), 422, "not available on this host"),
                (Self.spec("x2", ["hypervisor": "kvm"]), 422, "kvm is not usable"),
                (Self.spec("x3", ["hypervisor": "hyperv"]), 400, "hypervisor must be"),
                (Self.spec("123"), 400, "name must start with a letter"),
                (Self.spec("x4", ["hda_image": "nope.qcow2"]), 400, "no file 'nope.qcow2'"),
                (Self.spec("x5", ["hda_image": "../etc/passwd"]), 400, "relative path"),
                (Self.spec("x6", ["hda_save_to": "/etc/x"]), 400, "relative path"),
                (Self.spec("x7", ["sys_arch": "arm64"]), 400, "sys_arch"),
                (Self.spec("x8", ["mem_size": 1]), 400, "mem_size"),
                (Self.spec("x9", ["cpu_count": "two"]), 400, "wrong type"),
                (Self.spec("viewer.p.k"), 400, "reserved for keyed viewers"),
            ]
            for (body, status, text) in cases {
                let (got, answer) = try await api.send("POST", "/v1/vms", body)
                let message = ((answer as? [String: Any])?["message"] as? String) ?? ""
                #expect(got == status && message.contains(text), "\(body["name"] ?? ""): \(got) \(message)")
            }
            _ = try await api.object("POST", "/v1/vms", Self.spec("dup", ["run_agent": false]), status: 201)
            let (dup, _) = try await api.send("POST", "/v1/vms", Self.spec("dup"))
            #expect(dup == 409)
            let (missing, _) = try await api.send("GET", "/v1/vms/no-such-vm")
            #expect(missing == 404)
            let generic = try await api.send("GET", "/v1/vms?kind=generic").1 as? [[String: Any]]
            #expect(generic?.count == 1)
            #expect(try await api.vms().isEmpty, "generic VMs are not pool VMs")
            _ = try await api.object("DELETE", "/v1/vms/dup")
            try await Self.waitStatus(api, "dup", "destroyed", timeout: 30)
        }
    }
}

/// Python's http.server on loopback over a directory (the images a VM spec names by URL).
/// A ChildProcess, not Foundation's Process: waitUntilExit hung here after terminate().
final class HTTPFileServer: Sendable {
    let port: Int
    private let child: ChildProcess

    init(directory: String) throws {
        port = try ApplianceProcess.freePort()
        child = try ChildProcess(executable: "/usr/bin/python3",
                                 arguments: ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory],
                                 environment: ["PATH": "/usr/bin:/bin"], outputPath: "/dev/null")
        for _ in 0..<50 {
            if let url = URL(string: "http://127.0.0.1:\(port)/"), (try? Data(contentsOf: url)) != nil { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ApplianceProcess.Failure("http.server did not start")
    }

    func url(_ file: String) -> String { "http://127.0.0.1:\(port)/\(file)" }

    func stop() {
        child.signal(SIGKILL)  // the test process masks SIGTERM, and a spawned child inherits the mask
        _ = child.waitFor()
    }
}
