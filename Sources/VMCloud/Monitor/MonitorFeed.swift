import Foundation
import Hummingbird
import NIOCore
import VMCloudCore

/// The monitor page's live feed: server-sent events carrying a snapshot of the pool's VMs
/// (`event: vms`), sent when it changes and checked once a second. A comment line every 5 s
/// keeps proxies from closing an idle stream and finds a gone client soon (its write fails).
/// The store calls are async (GRDB's own queue), so nothing here blocks an event loop.
struct MonitorFeed {
    let pool: Pool
    var interval: Duration = .seconds(1)

    struct Snapshot: Encodable, Equatable {
        let vms: [VMView]
        let pool: PoolSize
        /// Handles queued for a VM, over all batches.
        let waiting: Int
    }

    func snapshot() async throws -> Snapshot {
        Snapshot(vms: try await pool.store.vms().map(VMView.init), pool: try await pool.store.poolSize(),
                 waiting: try await pool.store.handleCount(state: .waiting))
    }

    /// Without `Accept: text/event-stream` (a plain fetch, curl): one snapshot as JSON.
    func response(for request: Request) async throws -> Response {
        let wantsStream = request.headers[.accept]?.contains("text/event-stream") ?? false
        guard wantsStream else { return JSONBody.response(try await snapshot()) }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: ResponseBody { writer in
                var last: Data?
                var quietSince = ContinuousClock.now
                while !Task.isCancelled {
                    let data = try JSONBody.encoder.encode(try await snapshot())
                    if data != last {
                        try await writer.write(ByteBuffer(string: "event: vms\ndata: " + String(decoding: data, as: UTF8.self) + "\n\n"))
                        last = data
                        quietSince = .now
                    } else if ContinuousClock.now - quietSince > .seconds(5) {
                        try await writer.write(ByteBuffer(string: ": still here\n\n"))
                        quietSince = .now
                    }
                    try await Task.sleep(for: interval)
                }
                try await writer.finish(nil)
            })
    }
}
