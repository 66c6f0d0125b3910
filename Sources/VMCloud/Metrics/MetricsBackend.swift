import Libvirt
import Metrics
import Prometheus
import VMCloudCore
import VNCBridge

/// The process's metrics backend: every swift-metrics handler (ours and the libraries') lands
/// in one Prometheus registry, which `/metrics` renders.
enum MetricsBackend {
    /// Bootstraps swift-metrics on first use, once per process (swift-metrics allows one
    /// bootstrap; tests build many servers in one process and share it).
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = ApplianceMetrics.durationBuckets
        MetricsSystem.bootstrap(factory)
        ApplianceMetrics.register()
        LibvirtMetrics.register()
        BridgeMetrics.register()
        return registry
    }()

    /// Call before anything creates a metric: a handler made earlier stays a no-op.
    static func bootstrap() { _ = registry }
}
