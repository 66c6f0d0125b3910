import AgentProtocol
import Hummingbird
import VMCloudCore

/// The six vmcloud endpoints of the seed, byte for byte: POSTs take no body; "returns nothing"
/// is a 200 with an empty body; ids are returned as bare JSON numbers (e.g. `17`). Their control
/// apps authenticate as the seed's did: `?key=`, or nothing from a trusted network.
struct LegacyRoutes {
    let pool: Pool
    /// The operator's default cookies (config `defaultCookies`): the seed's prepare-batch has no
    /// way to pass any.
    let defaultCookies: [AgentProtocol.Cookie]
    let viewer: ViewerAccess

    func register(on router: APIRouter) {
        router.post("/set-pool-size/:min/:max/:linger", access: .admin(.queryKeyOrTrustedNetwork)) { _, context in
            let p = context.parameters
            let size = try InputValidation.poolSize(
                min: try InputValidation.count(p.require("min"), "min"),
                max: try InputValidation.count(p.require("max"), "max"),
                lingerMs: try InputValidation.integer(p.require("linger"), "linger"))
            try await pool.setPoolSize(size)
            return JSONBody.empty
        }
        router.post("/prepare-batch/:size/:homepage", access: .client(.queryKeyOrTrustedNetwork)) { _, context in
            let size = try InputValidation.batchSize(InputValidation.count(context.parameters.require("size"), "size"))
            let homepage = try InputValidation.homepage(pathSegment: context.parameters.require("homepage"))
            let batch = try await pool.prepareBatch(size: size, homepage: homepage, cookies: defaultCookies, client: context.requireClient().clientId)
            return JSONBody.response(batch.id!)
        }
        router.post("/lock/:batch", access: .client(.queryKeyOrTrustedNetwork)) { _, context in
            let id = try InputValidation.id(context.parameters.require("batch"), "batch")
            try context.requireAccess(owner: try await pool.store.batchOwner(id), else: StoreError.batchNotFound(id))
            let handle = try await pool.lock(batchId: id)
            return JSONBody.response(handle.id!)
        }
        router.post("/release/:vmhandle", access: .client(.queryKeyOrTrustedNetwork)) { _, context in
            let id = try InputValidation.id(context.parameters.require("vmhandle"), "vmhandle")
            try context.requireAccess(owner: try await pool.store.handleOwner(id), else: StoreError.handleNotFound(id))
            try await pool.release(handleId: id)
            return JSONBody.empty
        }
        router.get("/handle-status/:vmhandle", access: .client(.queryKeyOrTrustedNetwork)) { request, context in
            let id = try InputValidation.id(context.parameters.require("vmhandle"), "vmhandle")
            try context.requireAccess(owner: try await pool.store.handleOwner(id), else: StoreError.handleNotFound(id))
            // A poll keeps the handle's lease alive.
            guard let handle = try await pool.store.pollHandle(id) else { throw StoreError.handleNotFound(id) }
            guard handle.state == .assigned, let vmId = handle.vmId, let vm = try await pool.store.vm(vmId) else {
                var status = HandleStatusView(assigned: false, vmid: nil, vm: nil)
                status.showLease(of: handle)
                return JSONBody.response(status)
            }
            var view = VMView(vm)
            view.pages = .init(count: try await pool.store.pages(handle: handle).count, list: "/v1/handles/\(id)/pages")
            view.viewer = try await viewer.links(for: handle, baseURL: viewer.baseURL(for: request))
            var status = HandleStatusView(assigned: true, vmid: vmId, vm: view)
            status.showLease(of: handle)
            return JSONBody.response(status)
        }
        router.post("/cancel-batch/:batch", access: .client(.queryKeyOrTrustedNetwork)) { _, context in
            let id = try InputValidation.id(context.parameters.require("batch"), "batch")
            try context.requireAccess(owner: try await pool.store.batchOwner(id), else: StoreError.batchNotFound(id))
            try await pool.cancelBatch(batchId: id)
            return JSONBody.empty
        }
    }
}
