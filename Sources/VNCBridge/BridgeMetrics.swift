import Metrics

/// What the bridge reports through swift-metrics; the appliance exports it on `/metrics`.
/// Created on first use, after the process bootstrapped its metrics backend.
public enum BridgeMetrics {
    /// Viewer sessions that reached the VM's VNC socket.
    static let sessions = Counter(label: "vmcloud_bridge_sessions_total")
    static let activeSessions = Meter(label: "vmcloud_bridge_sessions_active")
    /// The VM's framebuffer updates on their way to browsers.
    static let bytesToBrowser = Counter(label: "vmcloud_bridge_bytes_total", dimensions: [("direction", "to_browser")])
    /// Browser input that passed the filter, on its way to the VM.
    static let bytesToVM = Counter(label: "vmcloud_bridge_bytes_total", dimensions: [("direction", "to_vm")])

    /// Creates them now, so a scrape shows them at 0 before the first session.
    public static func register() { _ = (sessions, activeSessions, bytesToBrowser, bytesToVM) }
}
