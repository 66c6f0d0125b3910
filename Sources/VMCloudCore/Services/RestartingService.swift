import Logging
import ServiceLifecycle

/// Runs a service and, when it throws, logs the error and runs it again after a pause that
/// doubles up to `maxPause`: a dependency that went away (libvirtd, PulseAudio, a full disk for
/// a moment) must not end the service group and with it the whole appliance.
///
/// Cancellation and a graceful shutdown end it as before. A fault that is a bug (a trap) still
/// ends the process, as it should.
package struct RestartingService: Service, CustomStringConvertible {
    package let base: any Service
    package let name: String
    package let logger: Logger
    package var firstPause: Duration = .seconds(1)
    package var maxPause: Duration = .seconds(30)

    package init(base: any Service, name: String, logger: Logger, firstPause: Duration = .seconds(1), maxPause: Duration = .seconds(30)) {
        self.base = base
        self.name = name
        self.logger = logger
        self.firstPause = firstPause
        self.maxPause = maxPause
    }

    package var description: String { "RestartingService(\(name))" }

    package func run() async throws {
        var pause = firstPause
        var restarts = 0
        while true {
            do {
                try await base.run()
                return
            } catch {
                if error is CancellationError || Task.isCancelled || Task.isShuttingDownGracefully { throw error }
                restarts += 1
                logger.error("service failed; restarting it", metadata: [
                    "service": "\(name)", "error": "\(error)", "restarts": "\(restarts)", "pause": "\(pause)"])
                try await Task.sleep(for: pause)
                pause = min(pause * 2, maxPause)
            }
        }
    }
}

extension Service {
    /// This service, restarted when it throws (see `RestartingService`).
    package func restarting(as name: String, logger: Logger) -> RestartingService {
        RestartingService(base: self, name: name, logger: logger)
    }
}
