import Logging
import ServiceLifecycle

/// Runs a service and, when it throws, logs the error and runs it again after a pause that
/// doubles up to `maxPause`: a dependency that went away (libvirtd, PulseAudio, a full disk for
/// a moment) must not end the service group and with it the whole appliance.
///
/// Cancellation and a graceful shutdown end it as before. A fault that is a bug (a trap) still
/// ends the process, as it should.
struct RestartingService: Service, CustomStringConvertible {
    let base: any Service
    let name: String
    let logger: Logger
    var firstPause: Duration = .seconds(1)
    var maxPause: Duration = .seconds(30)

    var description: String { "RestartingService(\(name))" }

    func run() async throws {
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
    func restarting(as name: String, logger: Logger) -> RestartingService {
        RestartingService(base: self, name: name, logger: logger)
    }
}
