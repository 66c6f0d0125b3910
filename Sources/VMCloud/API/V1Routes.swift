import Foundation
import Hummingbird
import VMCloudCore

/// The JSON API under /v1 (described in docs/openapi.yaml): the pool operations with JSON bodies
/// plus listings of VMs, batches, handles and events.
struct V1Routes {
    let pool: Pool
    let openAPIDocument: String?
    /// Generic VMs, for `GET /v1/vms/{uuid or name}`.
    var machines: MachineService? = nil

    func register(on router: APIRouter) {
        let v1 = router.group("v1")
        v1.get("openapi.yaml", access: .open) { _, _ in
            guard let openAPIDocument else { throw APIError.notFound("the OpenAPI document is not installed") }
            return Response(status: .ok, headers: [.contentType: "application/yaml"],
                            body: .init(byteBuffer: ByteBuffer(string: openAPIDocument)))
        }

        v1.get("pool", access: .admin) { _, _ in try await poolView() }
        v1.put("pool", access: .admin) { request, _ in
            let body = try await JSONBody.decode(PoolSizeBody.self, from: request)
            try await pool.setPoolSize(InputValidation.poolSize(min: body.min, max: body.max, lingerMs: body.lingerMs))
            return try await poolView()
        }

        v1.get("vms", access: .admin) { request, _ in
            let destroyed = request.uri.queryParameters.getAll("destroyed")
            guard destroyed.count <= 1, destroyed.allSatisfy({ $0 == "true" || $0 == "false" }) else {
                throw APIError.badRequest("destroyed must be true or false, given once")
            }
            switch request.uri.queryParameters.get("kind") ?? "pool" {
            case "pool": return JSONBody.response(try await pool.store.vms().map(VMView.init))
            case "generic":
                guard let machines else { throw APIError.notFound("generic VMs are not enabled") }
                let all = try await machines.store.machines(includeDestroyed: destroyed.first == "true")
                return JSONBody.response(all.map { MachineView($0, files: machines.role.files($0.id!)) })
            default: throw APIError.badRequest("kind must be pool or generic")
            }
        }
        v1.get("vms/:id", access: .admin) { _, context in
            let raw = try context.parameters.require("id")
            // All digits: a pool VM's id; anything else: a generic VM's uuid or name.
            if let machines, !raw.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
                return try await MachineRoutes.status(raw, machines: machines)
            }
            let id = try InputValidation.id(raw, "id")
            guard let vm = try await pool.store.vm(id) else { throw StoreError.vmNotFound(id) }
            return JSONBody.response(VMView(vm))
        }
        v1.get("vms/:id/agent", access: .admin) { _, context in
            let id = try InputValidation.id(context.parameters.require("id"), "id")
            let state = try await pool.agentState(vm: id)
            return JSONBody.response(AgentStateView(
                homepage: state.homepage, ip: state.ip, history: state.history, cookies: state.cookies,
                keyEvents: state.keyEvents, pointerEvents: state.pointerEvents, tabs: state.tabs))
        }
        v1.post("vms/:id/navigate", access: .admin) { request, context in
            let id = try InputValidation.id(context.parameters.require("id"), "id")
            let url = try InputValidation.homepage(try await JSONBody.decode(NavigateBody.self, from: request).url)
            try await pool.navigate(vm: id, url: url)
            return JSONBody.response(["url": url])
        }

        v1.get("batches", access: .client) { _, context in
            let caller = try context.requireClient()
            return JSONBody.response(try await pool.store.batches().filter { caller.mayAccess(owner: $0.clientId) }.map { BatchView($0) })
        }
        v1.post("batches", access: .client) { request, context in
            let body = try await JSONBody.decode(BatchBody.self, from: request)
            let size = try InputValidation.batchSize(body.size)
            let homepage = try InputValidation.homepage(body.homepage)
            let cookies = try InputValidation.cookies(body.cookies ?? [])
            let browser = try InputValidation.browserWindow(body.browser)
            let limits = try InputValidation.batchLimits(leaseSeconds: body.leaseSeconds, expiresAt: body.expiresAt)
            let batch = try await pool.prepareBatch(size: size, homepage: homepage, cookies: cookies,
                                                    client: context.requireClient().clientId, limits: limits, browser: browser)
            return JSONBody.response(BatchView(batch), status: .created)
        }
        v1.get("batches/:id", access: .client) { _, context in
            let id = try await ownBatch(context)
            guard let batch = try await pool.store.batch(id) else { throw StoreError.batchNotFound(id) }
            return JSONBody.response(BatchView(batch, handles: try await handleViews(batch: id)))
        }
        v1.post("batches/:id/cancel", access: .client) { _, context in
            let id = try await ownBatch(context)
            try await pool.cancelBatch(batchId: id)
            return JSONBody.response(BatchView(try await pool.store.batch(id)!))
        }
        v1.post("batches/:id/locks", access: .client) { _, context in
            let handle = try await pool.lock(batchId: ownBatch(context))
            return JSONBody.response(try await handleView(handle), status: .created)
        }

        v1.get("handles", access: .client) { _, context in
            let caller = try context.requireClient()
            var views: [HandleView] = []
            let owners = Dictionary(try await pool.store.batches().map { ($0.id!, $0.clientId) }, uniquingKeysWith: { a, _ in a })
            for handle in try await pool.store.handles() where caller.mayAccess(owner: owners[handle.batchId] ?? nil) {
                views.append(try await handleView(handle))
            }
            return JSONBody.response(views)
        }
        v1.get("handles/:id", access: .client) { _, context in
            let id = try await ownHandle(context)
            // Reading one handle is a poll: it keeps the handle's lease alive.
            guard let handle = try await pool.store.pollHandle(id) else { throw StoreError.handleNotFound(id) }
            return JSONBody.response(try await handleView(handle))
        }
        v1.post("handles/:id/keepalive", access: .client) { _, context in
            let id = try await ownHandle(context)
            return JSONBody.response(try await handleView(pool.store.keepAlive(handleId: id)))
        }
        v1.post("handles/:id/release", access: .client) { _, context in
            let id = try await ownHandle(context)
            try await pool.release(handleId: id)
            return JSONBody.response(try await handleView(pool.store.handle(id)!))
        }

        v1.get("events", access: .admin) { request, _ in
            let query = request.uri.queryParameters
            let after = try query.get("after").map { try InputValidation.integer($0, "after") }
            let vm = try query.get("vm").map { try InputValidation.id($0, "vm") }
            let limit = try query.get("limit").map { try InputValidation.count($0, "limit", max: 1000) } ?? 200
            return JSONBody.response(try await pool.store.events(afterId: after, vm: vm, limit: limit).map(EventView.init))
        }
    }

    /// The `:id` batch, if the caller may use it (another client's is a 404).
    private func ownBatch(_ context: AppRequestContext) async throws -> Int64 {
        let id = try InputValidation.id(context.parameters.require("id"), "id")
        try context.requireAccess(owner: try await pool.store.batchOwner(id), else: StoreError.batchNotFound(id))
        return id
    }

    private func ownHandle(_ context: AppRequestContext) async throws -> Int64 {
        let id = try InputValidation.id(context.parameters.require("id"), "id")
        try context.requireAccess(owner: try await pool.store.handleOwner(id), else: StoreError.handleNotFound(id))
        return id
    }

    private func poolView() async throws -> Response {
        let size = try await pool.store.poolSize()
        var counts: [String: Int] = [:]
        for vm in try await pool.store.vms() where vm.state.isLive { counts[vm.state.rawValue, default: 0] += 1 }
        let pause = await pool.bootPause()
        return JSONBody.response(PoolView(instance: pool.store.instanceId, min: size.min, max: size.max, lingerMs: size.lingerMs, vms: counts,
                                          faults: pause.faults, bootFailures: pause.bootFailures, bootsPausedUntil: pause.until))
    }

    private func handleView(_ handle: HandleRecord) async throws -> HandleView {
        guard let vmId = handle.vmId else { return HandleView(handle, vm: nil) }
        return HandleView(handle, vm: try await pool.store.vm(vmId))
    }

    private func handleViews(batch: Int64?) async throws -> [HandleView] {
        var views: [HandleView] = []
        for handle in try await pool.store.handles(batch: batch) { views.append(try await handleView(handle)) }
        return views
    }
}
