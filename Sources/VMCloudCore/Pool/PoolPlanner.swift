import Foundation

/// What the pool should do next to move towards its size: a pure function of the stored state,
/// so that it can be tested without a hypervisor.
package struct PoolPlan: Equatable {
    package var boot = 0
    /// Idle pool VMs to destroy (above max, or lingered too long above min).
    package var destroy: [Int64] = []
    /// VMs stuck booting past the boot timeout.
    package var bootTimedOut: [Int64] = []
    /// When the plan changes by time alone: the next linger or boot timeout to end.
    package var lookAgainAt: Date?

    package init(boot: Int = 0, destroy: [Int64] = [], bootTimedOut: [Int64] = [], lookAgainAt: Date? = nil) {
        self.boot = boot
        self.destroy = destroy
        self.bootTimedOut = bootTimedOut
        self.lookAgainAt = lookAgainAt
    }
}

package enum PoolPlanner {
    package static func plan(
        size: PoolSize, vms: [VMRecord], openBatches: [BatchRecord], now: Date, bootTimeout: TimeInterval,
        maxConcurrentBoots: Int = .max
    ) -> PoolPlan {
        var plan = PoolPlan()
        let live = vms.filter { $0.state.isLive }
        let free = live.filter { $0.state == .idle && $0.batchId == nil }
            .sorted { ($0.idleSince ?? $0.stateSince) < ($1.idleSince ?? $1.stateSince) }
        let starting = live.filter { $0.state == .pending || $0.state == .booting }

        plan.bootTimedOut = starting
            .filter { $0.state == .booting && now.timeIntervalSince($0.stateSince) > bootTimeout }
            .compactMap(\.id)

        // Batches still owed VMs take free and starting ones first; boot the rest, up to max.
        let owed = openBatches.reduce(0) { $0 + max(0, $1.size - $1.granted) }
        let wanted = max(size.min, live.count + max(0, owed - free.count - starting.count))
        plan.boot = min(max(0, min(wanted, size.max) - live.count), max(0, maxConcurrentBoots - starting.count))

        // Above max: shed free VMs at once. Above min: shed those idle longer than linger.
        var count = live.count
        var candidates = free[...]
        while count > size.max, let vm = candidates.popFirst() {
            plan.destroy.append(vm.id!)
            count -= 1
        }
        let linger = TimeInterval(size.lingerMs) / 1000
        while count > size.min, let vm = candidates.first,
              now.timeIntervalSince(vm.idleSince ?? vm.stateSince) > linger {
            candidates.removeFirst()
            plan.destroy.append(vm.id!)
            count -= 1
        }
        let lingerEnds = count > size.min ? candidates.first.map { ($0.idleSince ?? $0.stateSince).addingTimeInterval(linger) } : nil
        let bootEnds = starting.filter { $0.state == .booting && !plan.bootTimedOut.contains($0.id!) }
            .map { $0.stateSince.addingTimeInterval(bootTimeout) }.min()
        plan.lookAgainAt = [lingerEnds, bootEnds].compactMap { $0 }.min()
        return plan
    }
}
