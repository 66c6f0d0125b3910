import Hummingbird
import Logging
import VMCloudCore

/// `appliance serve`: the metrics backend, the logger, then the application until SIGTERM/SIGINT.
package struct ApplianceServer {
    let config: ServeConfig

    package init(config: ServeConfig) { self.config = config }

    package func run() async throws {
        // Before any part creates a metric (a metric made earlier would report nowhere).
        MetricsBackend.bootstrap()
        var logger = Logger(label: "appliance")
        logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info
        try await buildApplication(config, logger: logger).runService()
    }
}
