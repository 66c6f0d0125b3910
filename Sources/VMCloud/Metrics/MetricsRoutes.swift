import Hummingbird
import NIOCore
import VMCloudCore

/// `GET /metrics`: the Prometheus text format (admin key; a scraper sends it as a bearer token).
struct MetricsRoutes {
    let gauges: StoreGauges

    func register(on router: APIRouter) {
        router.get("/metrics", access: .admin) { _, _ -> Response in
            try await gauges.update()
            var text: [UInt8] = []
            MetricsBackend.registry.emit(into: &text)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}
