import Metrics

/// The appliance's own figures, reported through swift-metrics (the libraries report theirs:
/// `LibvirtMetrics`, `BridgeMetrics`). Created on first use, after `MetricsBackend` bootstrapped.
package enum ApplianceMetrics {
    /// Pool VM from its row (pending) to the agent's hello (idle).
    package static let bootDuration = Metrics.Timer(label: "vmcloud_boot_duration_seconds")
    /// A reset (release or job end) from the request to the agent's `resetDone`.
    package static let resetDuration = Metrics.Timer(label: "vmcloud_reset_duration_seconds")
    /// The lock call itself (the API's answer: assigned at once, or waiting).
    package static let lockDuration = Metrics.Timer(label: "vmcloud_lock_duration_seconds")
    /// A handle from its lock to its VM (zero when a prepared VM was there).
    package static let handleWait = Metrics.Timer(label: "vmcloud_handle_wait_seconds")

    /// Buckets fitted to each duration: boots under TCG take seconds to minutes.
    package static let durationBuckets: [String: [Duration]] = [
        "vmcloud_boot_duration_seconds": [1, 2, 5, 10, 20, 30, 60, 120, 300].map { .seconds($0) },
        "vmcloud_reset_duration_seconds": [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60].map { .milliseconds(Int($0 * 1000)) },
        "vmcloud_handle_wait_seconds": [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300].map { .milliseconds(Int($0 * 1000)) },
    ]

    package enum Loop: String { case pool, machines }

    package static func reconcilePasses(_ loop: Loop) -> Counter { Counter(label: "vmcloud_reconcile_passes_total", dimensions: [("loop", loop.rawValue)]) }
    package static func reconcilePassDuration(_ loop: Loop) -> Metrics.Timer {
        Metrics.Timer(label: "vmcloud_reconcile_pass_duration_seconds", dimensions: [("loop", loop.rawValue)])
    }
    package static let poolPasses = reconcilePasses(.pool)
    package static let poolPassDuration = reconcilePassDuration(.pool)
    package static let machinePasses = reconcilePasses(.machines)
    package static let machinePassDuration = reconcilePassDuration(.machines)

    package enum AudioTransport: String { case http, websocket }

    package struct AudioCounters {
        package let sessions: Counter
        package let bytes: Counter
        package init(_ transport: AudioTransport) {
            sessions = Counter(label: "vmcloud_audio_sessions_total", dimensions: [("transport", transport.rawValue)])
            bytes = Counter(label: "vmcloud_audio_bytes_total", dimensions: [("transport", transport.rawValue)])
        }
    }
    package static let audioHTTP = AudioCounters(.http)
    package static let audioWebSocket = AudioCounters(.websocket)
    package static let audioActiveSessions = Meter(label: "vmcloud_audio_sessions_active")

    /// Creates them now, so a scrape shows every family (at 0) from the start.
    package static func register() {
        _ = (bootDuration, resetDuration, lockDuration, handleWait)
        _ = (poolPasses, poolPassDuration, machinePasses, machinePassDuration)
        _ = (audioHTTP, audioWebSocket, audioActiveSessions)
    }
}
