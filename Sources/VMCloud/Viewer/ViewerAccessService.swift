import Logging
import ServiceLifecycle
import VMCloudCore

/// Ends bridge sessions soon after their access ends (release, cancel, VM loss, reset), from
/// whichever path ended it: a pass every `period` over the open sessions, one indexed query,
/// and nothing at all while no session is open.
struct ViewerAccessService: Service {
    let access: ViewerAccess
    var period: Duration = .milliseconds(100)
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let closed = try await access.sweep()
                    if closed > 0 { logger.info("closed viewer sessions whose access ended", metadata: ["sessions": "\(closed)"]) }
                } catch {
                    logger.warning("viewer access sweep failed", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: period)
            }
        }
    }
}
