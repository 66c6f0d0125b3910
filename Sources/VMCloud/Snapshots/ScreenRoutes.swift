import Hummingbird
import Libvirt
import VMCloudCore

/// A running VM's screen as PNG: full size for operators, thumbnails for the monitor page. Both
/// come from `ScreenshotCache`, so polling costs the VMs at most one capture per TTL.
struct ScreenRoutes {
    let pool: Pool
    let screens: ScreenshotCache

    func register(on router: APIRouter) {
        router.get("/v1/vms/:id/screenshot.png", access: .admin) { _, context in
            try await png(context) { try await screens.screenshotPNG(domainName: $0) }
        }
        router.get("/v1/vms/:id/thumbnail.png", access: .admin) { _, context in
            try await png(context) { try await screens.thumbnailPNG(domainName: $0) }
        }
    }

    private func png(_ context: some RequestContext, _ image: (String) async throws -> [UInt8]) async throws -> Response {
        let vm = try await pool.requireRunning(InputValidation.id(context.parameters.require("id"), "id"))
        let bytes: [UInt8]
        do {
            bytes = try await image(vm.domainName)
        } catch let error as LibvirtError {
            throw APIError(status: .badGateway, code: "screenshot_failed", message: "libvirt could not take VM \(vm.id!)'s screenshot: \(error)")
        }
        return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
