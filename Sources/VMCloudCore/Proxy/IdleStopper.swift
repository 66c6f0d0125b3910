import Foundation
import Logging
import ServiceLifecycle

/// Scale to zero: every `interval` it looks at each resource whose VM should run and asks the
/// waker to stop it once nothing used it for the resource's idle timeout (no request began or
/// ended, none is open). The VM is wanted `stopped`, not destroyed: the resource keeps one
/// machine row (its events, one name), a stopped VM's disks are discarded (no save targets),
/// and the next start makes fresh overlays, so a wake-up is the same clean cold boot as the
/// first one. It also drops kept addresses of VMs that crashed or were stopped meanwhile.
package struct IdleStopper: Service {
    package let waker: ResourceWaker
    package var interval: TimeInterval = 1
    package let logger: Logger

    package init(waker: ResourceWaker, interval: TimeInterval = 1, logger: Logger) {
        self.waker = waker
        self.interval = interval
        self.logger = logger
    }

    package func run() async throws {
        let waker = waker
        try await withGracefulShutdownHandler {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    await sweep()
                    try await Task.sleep(for: .seconds(interval))
                }
            }
        } onGracefulShutdown: {
            // Requests waiting for a VM end now, so the server's shutdown does not wait for them.
            waker.close()
        }
    }

    package func sweep(now: Date = Date()) async {
        do {
            for (resource, machine) in try await waker.store.resourcesWithMachines() {
                await waker.revalidate(resource.id, machine: machine)
                guard let machine, machine.desired == .running else { continue }
                await waker.stopIfIdle(resource, now: now)
            }
        } catch {
            logger.warning("idle sweep failed", metadata: ["error": "\(error)"])
        }
    }
}
