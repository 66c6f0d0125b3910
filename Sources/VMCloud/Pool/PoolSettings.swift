import Foundation

/// Timing knobs of the pool; the defaults suit the browser image under KVM, tests shorten them.
struct PoolSettings: Sendable {
    /// A VM whose agent has not said hello this long after boot is failed and replaced.
    var bootTimeout: TimeInterval = 300
    /// Longest wait for an agent's answer to configure/reset.
    var agentTimeout: TimeInterval = 60
    /// The reconciler also runs this often without any trigger (linger, timeouts).
    var tickInterval: TimeInterval = 0.5
    /// How often the reaper looks for files and sinks of VMs that are gone (also once at start).
    var reapInterval: TimeInterval = 300
    /// VMs booting at once, at most: a pool size of thousands must not start thousands of QEMUs
    /// in one pass (the fuzzer's pool sizes did, on the test driver).
    var maxConcurrentBoots = 8
}
