import Foundation
import Hummingbird
import VMCloudCore

/// Generic VMs under `/v1/vms` (docs/openapi.yaml), for operators: create, status, modify,
/// suspend, resume, stop, start, destroy. A VM is addressed by uuid or name; an all-digit
/// reference is a pool VM (see V1Routes), which is why names must start with a letter.
struct MachineRoutes {
    let machines: MachineService
    let engine: VMEngine

    func register(on router: APIRouter) {
        let v1 = router.group("v1")
        v1.post("vms", access: .admin) { request, _ in
            let body = try await JSONBody.decode(MachineRequest.self, from: request)
            return view(try await machines.create(body), status: .created)
        }
        v1.patch("vms/:id", access: .admin) { request, context in
            let body = try await JSONBody.decode(MachineModification.self, from: request)
            return view(try await machines.modify(try ref(context), body))
        }
        v1.delete("vms/:id", access: .admin) { _, context in view(try await machines.want(try ref(context), .destroyed)) }
        for (verb, desired) in [("suspend", MachineDesired.suspended), ("resume", .running), ("start", .running), ("stop", .stopped), ("destroy", .destroyed)] {
            v1.post("vms/:id/\(verb)", access: .admin) { _, context in view(try await machines.want(try ref(context), desired)) }
        }
        v1.get("vms/:id/events", access: .admin) { _, context in
            let machine = try await machines.store.machine(ref: try ref(context))
            return JSONBody.response(try await machines.store.machineEvents(machine: machine.id!).map(EventView.init))
        }
        v1.get("images", access: .admin) { _, _ in JSONBody.response(ImagesView(root: machines.images.root, files: machines.images.list())) }
        v1.get("reconciler", access: .admin) { _, _ in JSONBody.response(await engine.passStats()) }
    }

    /// The generic VM view of `ref` (for V1Routes' `GET /v1/vms/{id}` when `id` is not a number).
    static func status(_ ref: String, machines: MachineService) async throws -> Response {
        guard ref.utf8.count <= 64 else { throw APIError.badRequest("a VM is named by its uuid or name (at most 64 bytes)") }
        let machine = try await machines.store.machine(ref: ref)
        return JSONBody.response(MachineView(machine, files: machines.role.files(machine.id!)))
    }

    private func ref(_ context: some RequestContext) throws -> String {
        let raw = try context.parameters.require("id")
        guard !raw.isEmpty, raw.utf8.count <= 64 else { throw APIError.badRequest("a VM is named by its uuid or name (at most 64 bytes)") }
        return raw
    }

    private func view(_ machine: MachineRecord, status: HTTPResponse.Status = .ok) -> Response {
        JSONBody.response(MachineView(machine, files: machines.role.files(machine.id!)), status: status)
    }
}

struct ImagesView: Encodable {
    let root: String
    let files: [String]
}
