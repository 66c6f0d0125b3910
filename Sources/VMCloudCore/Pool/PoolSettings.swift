import Foundation

/// Timing knobs of the pool; the defaults suit the browser image under KVM, tests shorten them.
package struct PoolSettings: Sendable {
    /// A VM whose agent has not said hello this long after boot is failed and replaced.
    package var bootTimeout: TimeInterval = 300
    /// Longest wait for an agent's answer to configure/reset.
    package var agentTimeout: TimeInterval = 60
    /// How often the reaper looks for files and sinks of VMs that are gone (also once at start).
    package var reapInterval: TimeInterval = 300
    /// VMs booting at once, at most: a pool size of thousands must not start thousands of QEMUs
    /// in one pass (the fuzzer's pool sizes did, on the test driver).
    package var maxConcurrentBoots = 8

    package init(bootTimeout: TimeInterval = 300, agentTimeout: TimeInterval = 60, reapInterval: TimeInterval = 300, maxConcurrentBoots: Int = 8) {
        self.bootTimeout = bootTimeout
        self.agentTimeout = agentTimeout
        self.reapInterval = reapInterval
        self.maxConcurrentBoots = maxConcurrentBoots
    }
}
