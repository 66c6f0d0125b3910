import Foundation
import Logging
import ServiceLifecycle

/// Counts authenticated requests per client in memory and adds them to the store every
/// second: one write per second instead of one per request (the proxy path is hot). A crash
/// loses at most the last second's counts, which are statistics only.
package actor RequestCounter {
    package init() {}

    private var pending: [Int64: Int64] = [:]

    package func count(_ client: Int64) { pending[client, default: 0] += 1 }

    package func flush(to store: Store) async throws {
        let counts = pending
        pending = [:]
        do {
            try await store.addRequests(counts)
        } catch {
            for (id, n) in counts { pending[id, default: 0] += n }
            throw error
        }
    }
}

/// Flushes the request counts for the lifetime of the server, and once more at shutdown.
package struct RequestCounterService: Service {
    package let counter: RequestCounter
    package let store: Store
    package let logger: Logger

    package init(counter: RequestCounter, store: Store, logger: Logger) {
        self.counter = counter
        self.store = store
        self.logger = logger
    }

    package func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                do { try await counter.flush(to: store) } catch {
                    logger.warning("request counts not saved yet", metadata: ["error": "\(error)"])
                }
            }
        }
        try? await counter.flush(to: store)
    }
}
