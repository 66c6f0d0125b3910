import Metrics

/// What the client reports through swift-metrics; the appliance exports it on `/metrics`.
/// Created on first use, after the process bootstrapped its metrics backend.
public enum LibvirtMetrics {
    /// Operations that failed: libvirt's own errors and those that found no connection.
    static let errors = Counter(label: "vmcloud_libvirt_errors_total")
    /// Connections re-opened after libvirtd went away.
    static let reconnects = Counter(label: "vmcloud_libvirt_reconnects_total")

    /// Creates them now, so a scrape shows them at 0 before the first error.
    public static func register() { _ = (errors, reconnects) }
}
