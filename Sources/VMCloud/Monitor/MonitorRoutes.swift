import Foundation
import Hummingbird
import VMCloudCore

/// The operator's monitor: the page itself (open, like viewer.html; every call it makes needs
/// the admin key), its live feed, the host figures and viewer links for any locked VM.
struct MonitorRoutes {
    let pool: Pool
    let viewer: ViewerAccess
    /// A path in the state directory: the disk figure is that file system's.
    let stateDirectory: String

    func register(on router: APIRouter) {
        router.get("/static/monitor.html", access: .open) { _, _ in
            return try InstalledFiles.htmlPage("static/monitor.html")
        }
        // The page's live feed: EventSource cannot set an Authorization header.
        router.get("/v1/monitor/events", access: .admin(.queryKey)) { request, _ in
            try await MonitorFeed(pool: pool).response(for: request)
        }
        router.get("/v1/host", access: .admin) { _, _ in
            let vms = try await pool.store.vms().count
            return JSONBody.response(HostView(vms: vms, host: HostFigures.read(diskPath: stateDirectory)))
        }
        // The operator opens a locked VM's screen: the same links its handle's worker got.
        router.post("/v1/vms/:id/viewer-links", access: .admin) { request, context in
            let id = try InputValidation.id(context.parameters.require("id"), "id")
            guard let vm = try await pool.store.vm(id) else { throw StoreError.vmNotFound(id) }
            guard let handleId = vm.handleId, let handle = try await pool.store.handle(handleId),
                  let links = try await viewer.links(for: handle, baseURL: viewer.baseURL(for: request)) else {
                throw APIError(status: .conflict, code: "not_locked", message: "VM \(id) is not locked by a handle; its screen opens through a handle")
            }
            return JSONBody.response(links)
        }
    }

    struct HostView: Encodable {
        /// Pool VMs that are not destroyed.
        let vms: Int
        let host: HostFigures
    }
}
