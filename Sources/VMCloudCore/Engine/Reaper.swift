import Foundation

/// Removes what VMs leave behind once they are gone: overlays, agent and VNC sockets, console
/// logs and audio sinks of VMs that are neither live in the store nor running in libvirt (a
/// crash between a domain's end and its files' removal, or files from an earlier instance).
/// The same for generic VMs (`machines/m<ID>/`, `m<ID>.*` sockets) that are destroyed or unknown.
/// Orphan domains themselves are the engine's job (VMEngine destroys them). Each removal
/// is logged as an event.
package struct Reaper {
    package let store: Store
    package let hypervisor: Hypervisor

    package init(store: Store, hypervisor: Hypervisor) {
        self.store = store
        self.hypervisor = hypervisor
    }

    /// One pass; returns what it removed.
    ///
    /// Everything on disk and in the sound daemon is listed *before* the store and libvirt are
    /// asked what to keep: a VM inserted during the pass then either made its files after the
    /// listing (not seen) or is in the store when it is read (kept). The other order removed the
    /// fresh overlay of a VM booting right after a restart (found by bench/fault).
    ///
    /// - Parameter afterListing: runs between the listing and the reads of what to keep (a test
    ///   inserts a VM there to prove the order).
    @discardableResult
    package func sweep(afterListing: @Sendable () async throws -> Void = {}) async throws -> [String] {
        let state = hypervisor.state
        let machinesDir = state.root + "/machines"
        func list(_ directory: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] }
        let vmFiles = list(state.vmsDir).map { (state.vmsDir, $0) } + list(state.runDir).map { (state.runDir, $0) }
        let machineDirs = list(machinesDir)
        let sinkPrefix = hypervisor.domainPrefix + "-vm"
        // The daemon's own list: it may hold sinks of an earlier run (the daemon outlives a
        // killed appliance and is reused).
        var sinks: [String] = []
        if let audio = hypervisor.audio { sinks = ((try? await audio.daemonSinkNames()) ?? audio.sinkNames).filter { $0.hasPrefix(sinkPrefix) } }
        try await afterListing()

        let live = Set(try await store.vms().filter { $0.state.isLive }.compactMap(\.id))
        let running = Set(try await hypervisor.ourDomains().values)
        let keep = live.union(running)
        let keptMachines = Set(try await store.machineRows().filter { $0.status != .destroyed }.map(\.id))

        var removed: [String] = []
        for (directory, name) in vmFiles {
            let suffixes = directory == state.vmsDir ? [".qcow2"] : [".agent.sock", ".vnc.sock", ".console.log"]
            guard let id = Self.vmId(in: name, suffixes: suffixes), !keep.contains(id) else { continue }
            await remove(directory + "/" + name, into: &removed)
        }
        // Generic VMs: the disks folder and sockets of a machine that is destroyed or unknown.
        for name in machineDirs {
            guard name.hasPrefix("m"), let id = Int64(name.dropFirst()), !keptMachines.contains(id) else { continue }
            await remove(machinesDir + "/" + name, into: &removed)
        }
        for (directory, name) in vmFiles where directory == state.runDir {
            guard name.hasPrefix("m"), let suffix = [".agent.sock", ".vnc.sock", ".console.log"].first(where: { name.hasSuffix($0) }),
                  let id = Int64(name.dropFirst().dropLast(suffix.count)), !keptMachines.contains(id) else { continue }
            await remove(directory + "/" + name, into: &removed)
        }
        if let audio = hypervisor.audio {
            for sink in sinks {
                guard let id = Int64(sink.dropFirst(sinkPrefix.count)), !keep.contains(id) else { continue }
                await audio.removeSink(sink)
                removed.append("sink \(sink)")
            }
        }
        for item in removed {
            try await store.record("reaper.removed", "removed \(item): its VM is gone")
        }
        return removed
    }

    private func remove(_ path: String, into removed: inout [String]) async {
        do {
            try FileManager.default.removeItem(atPath: path)
            removed.append(path)
        } catch where !FileManager.default.fileExists(atPath: path) {
            // Removed meanwhile by its VM's destroy (a pass runs beside the sweep): not a failure.
        } catch {
            try? await store.record("reaper.failed", "could not remove \(path): \(error)")
        }
    }

    /// The VM id in `vm<ID><suffix>`, or nil for any other name.
    package static func vmId(in name: String, suffixes: [String]) -> Int64? {
        guard name.hasPrefix("vm"), let suffix = suffixes.first(where: { name.hasSuffix($0) }) else { return nil }
        return Int64(name.dropFirst(2).dropLast(suffix.count))
    }
}
