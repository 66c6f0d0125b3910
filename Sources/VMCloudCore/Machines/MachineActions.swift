import Foundation
import Libvirt

/// The actions `MachinePlan` asks for, each run as the VM's one task. They re-read nothing:
/// every store write is conditional on the status the action expects (see `Store.setStatus`).
extension MachineRole {
    package func perform(_ action: MachineAction, _ machine: MachineRecord) async throws {
        let id = machine.id!
        switch action {
        case .start:
            try await start(machine)
        case .restartFromStopped:
            files(id).removeAll()
            try await store.setStatus(machine: id, from: [.stopped, .failedToSave], to: .starting, agentSeen: false)
        case .adopt:
            let status: MachineStatus = machine.spec.runAgent && !machine.agentSeen ? .installing : .running
            if try await store.setStatus(machine: id, from: [.starting], to: status, event: "adopted its running domain") {
                await attachAgent(machine)
            }
        case .crashed:
            try await crashed(machine)
        case .suspend:
            try await libvirt.suspendDomain(name: machine.domainName)
            try await store.setStatus(machine: id, from: [.installing, .running], to: .suspended)
        case .resume:
            try await libvirt.resumeDomain(name: machine.domainName)
            try await store.setStatus(machine: id, from: [.suspended, .installing, .running],
                                      to: machine.agentSeen || !machine.spec.runAgent ? .running : .installing)
        case .correct(let status):
            try await store.setStatus(machine: id, from: [machine.status], to: status, event: "libvirt says the domain is \(status == .suspended ? "paused" : "running")")
        case .halt:
            try await halt(machine)
        case .save:
            try await save(machine)
        case .destroy:
            await closeAgent(id)
            _ = try await libvirt.destroyDomainReleasingLeases(name: machine.domainName)
            files(id).removeAll()
            try await store.setStatus(machine: id, from: Set(MachineStatus.allCases), to: .destroyed, event: "domain and disks removed")
        }
    }

    /// Fetches the images, makes the disks and creates the domain.
    private func start(_ machine: MachineRecord) async throws {
        let id = machine.id!
        let files = files(id)
        try files.makeDirectory()
        let spec = machine.spec
        let store = self.store
        let progress: @Sendable (String) -> Void = { note in Task { try? await store.setReason(machine: id, note) } }
        func fetch(_ reference: ImageReference, _ name: String) async throws -> String {
            let path = try await disks.resolve(reference, as: name, files: files, progress: progress)
            if case .url(let url) = reference {
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
                try await store.recordMachine("machine.downloaded", machine: id, "\(name) from \(url): \(MachineDisks.mib(size ?? 0))")
            }
            return path
        }
        var paths = MachineDomain.Disks(hda: files.overlay(.hda))
        try await disks.ensureOverlay(files.overlay(.hda), base: try await fetch(spec.hda, "hda"))
        if let hdb = spec.hdb {
            try await disks.ensureOverlay(files.overlay(.hdb), base: try await fetch(hdb, "hdb"))
            paths.hdb = files.overlay(.hdb)
        }
        if let cdrom = spec.cdrom { paths.cdrom = try await fetch(cdrom, "cdrom") }
        if let kernel = spec.kernel { paths.kernel = try await fetch(kernel, "kernel") }
        if let initrd = spec.initrd { paths.initrd = try await fetch(initrd, "initrd") }
        if let input = spec.inputFiles {
            try await disks.makeInputDisk(input, at: files.inputDisk)
            paths.input = files.inputDisk
        }
        files.removeSockets()
        let xml = try MachineDomain.definition(machine, disks: paths, files: files, network: network, instanceId: store.instanceId).xml()
        // A crash between this call and the status write leaves a running domain for a row
        // that says starting: the next pass adopts it (MachinePlan's `.adopt`).
        _ = try await libvirt.createTransientDomain(xml: xml)
        let status: MachineStatus = spec.runAgent ? .installing : .running
        try await store.setStatus(machine: id, from: [.starting], to: status, agentSeen: false, event: "domain \(machine.domainName) started")
        await TestGate.pass("machine-started")
        await attachAgent(machine)
    }

    /// The domain vanished while it should run (its QEMU died, or it powered itself off).
    private func crashed(_ machine: MachineRecord) async throws {
        let id = machine.id!
        await closeAgent(id)
        let now = Date()
        var recent = (crashes[id] ?? []).filter { now.timeIntervalSince($0) < settings.crashWindow }
        recent.append(now)
        crashes[id] = recent
        logger.warning("machine domain gone", metadata: ["machine": "\(id)", "policy": "\(machine.spec.onCrash)"])
        if machine.spec.onCrash == .restart && recent.count < settings.crashLimit {
            try await store.setStatus(machine: id, from: [.installing, .running, .suspended], to: .starting, agentSeen: false,
                                      event: "domain gone (crash \(recent.count)); restarting it on the same disks")
        } else {
            let why = machine.spec.onCrash == .stop ? "the crash policy is stop" : "\(recent.count) crashes in \(Int(settings.crashWindow)) s"
            try await store.setDesired(machine: id, .stopped)
            try await store.setStatus(machine: id, from: [.installing, .running, .suspended], to: .saving,
                                      event: "domain gone; not restarted (\(why)); saving its disks")
        }
        // libvirt may still list a domain whose QEMU is dead (its cleanup takes a second or two);
        // clear it, after the crash is on record, before anything starts the VM again.
        _ = try? await libvirt.destroyDomainReleasingLeases(name: machine.domainName)
    }

    /// Powers the domain off: an ACPI request, up to the spec's grace, then destroy.
    private func halt(_ machine: MachineRecord) async throws {
        let id = machine.id!
        let name = machine.domainName
        if machine.spec.stopGrace > 0, try await libvirt.domainState(name: name) == .running {
            try? await libvirt.shutdownDomain(name: name)
            let deadline = Date().addingTimeInterval(TimeInterval(machine.spec.stopGrace))
            while Date() < deadline, let state = try await libvirt.domainState(name: name), state != .shutoff {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        _ = try await libvirt.destroyDomainReleasingLeases(name: name)
        await closeAgent(id)
        try await store.setStatus(machine: id, from: [.starting, .failedToStart, .installing, .running, .suspended], to: .saving,
                                  event: "domain \(name) powered off")
    }

    /// Copies each disk with a save target (three tries each), or discards the disks.
    private func save(_ machine: MachineRecord) async throws {
        let id = machine.id!
        let files = files(id)
        let targets: [(MachineFiles.Slot, String)] = [(.hda, machine.spec.hdaSaveTo), (.hdb, machine.spec.hdbSaveTo)]
            .compactMap { slot, target in target.map { (slot, $0) } }
            .filter { FileManager.default.fileExists(atPath: files.overlay($0.0)) }
        for (slot, target) in targets {
            var lastError: Error?
            for attempt in 1...settings.saveAttempts {
                do {
                    try await disks.save(files.overlay(slot), to: target)
                    try await store.recordMachine("machine.saved", machine: id, "\(slot.rawValue) saved to \(target) (try \(attempt))")
                    lastError = nil
                    break
                } catch {
                    lastError = error
                    try await store.recordMachine("machine.save_failed", machine: id, "\(slot.rawValue) to \(target), try \(attempt) of \(settings.saveAttempts): \(error)")
                    if attempt < settings.saveAttempts { try await Task.sleep(for: .seconds(Double(attempt))) }
                }
            }
            if let lastError {
                let parked = try park(machine, files: files)
                try await store.setStatus(machine: id, from: [.saving], to: .failedToSave,
                                          reason: "saving \(slot.rawValue) to \(target) failed \(settings.saveAttempts) times: \(lastError); disks kept in \(parked)")
                return
            }
        }
        files.removeAll()
        try await store.setStatus(machine: id, from: [.saving], to: .stopped, event: targets.isEmpty ? "halted; disks discarded" : "halted; disks saved")
    }

    /// Moves the VM's disks into `failed_to_save/<name>-m<id>/`; returns that folder.
    private func park(_ machine: MachineRecord, files: MachineFiles) throws -> String {
        let folder = files.failedToSaveDirectory(name: machine.name)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for slot in MachineFiles.Slot.allCases where FileManager.default.fileExists(atPath: files.overlay(slot)) {
            let target = folder + "/\(slot.rawValue).qcow2"
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.moveItem(atPath: files.overlay(slot), toPath: target)
        }
        return folder
    }
}
