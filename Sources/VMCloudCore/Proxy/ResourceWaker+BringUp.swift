import Foundation
import Libvirt

extension ResourceWaker {
    /// One bring-up, shared by the requests that await it: asks for the VM, then polls until the
    /// guest port answers (there is nothing to await: the lease and the port are looked at).
    package nonisolated func bringUp(_ resource: ResourceRecord) async throws -> Upstream {
        let id = resource.id
        let started = Date()
        let deadline = started.addingTimeInterval(settings.startTimeout)
        try checkOpen()
        do {
            try await machines.ensureNetworkActive("default")
        } catch let error as LibvirtError where !error.isConnectionFailure {
            throw Refusal(.unavailable, code: "network_unavailable",
                           "libvirt's NAT network 'default' cannot be started (\(error)); install dnsmasq-base")
        }
        guard let (machine, created) = try await store.ensureResourceMachine(id) else {
            throw Refusal.notFound("no resource '\(id)'")
        }
        machines.kick()
        var problem = "its VM is \(machine.status.rawValue)"
        var guestUp = false
        var firstTry = true
        while true {
            try checkOpen()
            guard let current = try await store.machine(machine.id!), current.desired != .destroyed else {
                throw Refusal.notFound("resource '\(id)' was deleted")
            }
            switch current.status {
            case .failedToStart:
                throw Refusal(.upstreamFailed, code: "upstream_failed",
                               "the VM of resource \(id) failed to start: \(current.reason ?? "no reason recorded")")
            case .installing, .running:
                if let address = try await machines.leasedAddress(domain: current.domainName) {
                    guestUp = true
                    let remaining = max(0.05, min(settings.probeTimeout, deadline.timeIntervalSinceNow))
                    switch await PortProbe.probe(host: address, port: resource.port, timeout: .milliseconds(Int64(remaining * 1000))) {
                    case .open:
                        let waited = Date().timeIntervalSince(started)
                        if !firstTry || created { await countStart(id) }
                        logger.info("resource up", metadata: [
                            "resource": "\(id)", "machine": "\(current.id!)", "address": "\(address):\(resource.port)",
                            "waited": "\(String(format: "%.2f", waited)) s", "created": "\(created)"])
                        return Upstream(host: address, port: resource.port, machineId: current.id!)
                    case .closed(let why):
                        problem = "guest port \(resource.port) at \(address): \(why)"
                    }
                } else {
                    problem = "its VM runs; no DHCP lease yet"
                }
            default:
                problem = "its VM is \(current.status.rawValue)"
            }
            firstTry = false
            guard Date() < deadline else { break }
            try await Task.sleep(for: .seconds(settings.pollInterval))
        }
        let seconds = Int(settings.startTimeout.rounded())
        if guestUp {
            throw Refusal(.upstreamFailed, code: "upstream_refused",
                           "resource \(id): its VM runs but \(problem) (waited \(seconds) s)")
        }
        throw Refusal(.upstreamTimedOut, code: "upstream_timeout",
                       "resource \(id) did not come up within \(seconds) s: \(problem)")
    }
}
