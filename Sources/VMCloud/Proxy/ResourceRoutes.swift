import Foundation
import Hummingbird
import VMCloudCore

/// `POST/GET /v1/resources`, `GET/DELETE /v1/resources/{id}`: registering smart proxy
/// resources (admin only). A resource's VM is made on its first request, not here.
struct ResourceRoutes {
    let proxy: SmartProxy

    func register(on router: APIRouter) {
        let resources = router.group("v1/resources")
        resources.post(access: .admin) { request, _ in
            let body = try await JSONBody.decode(ResourceRequest.self, from: request)
            let machines = proxy.machines
            let resource = try body.validated(host: .init(kvmUsable: machines.kvmUsable, images: machines.images))
            try await proxy.store.createResource(resource)
            return try await view(resource, machine: nil, status: .created)
        }
        resources.get(access: .admin) { _, _ in
            var views: [ResourceView] = []
            for (resource, machine) in try await proxy.store.resourcesWithMachines() {
                views.append(ResourceView(resource, machine: machine, activity: await proxy.waker.activity(resource.id)))
            }
            return JSONBody.response(views)
        }
        resources.get(":id", access: .admin) { _, context in
            guard let (resource, machine) = try await proxy.store.resourceWithMachine(try id(context)) else {
                throw APIError.notFound("no resource '\(try id(context))'")
            }
            return try await view(resource, machine: machine)
        }
        resources.delete(":id", access: .admin) { _, context in
            let id = try id(context)
            let resource = try await proxy.store.deleteResource(id)
            await proxy.waker.forget(id)
            proxy.machines.kick()
            return try await view(resource, machine: nil)
        }
    }

    private func id(_ context: AppRequestContext) throws -> String {
        try ResourceValidation.id(try context.parameters.require("id"))
    }

    private func view(_ resource: ResourceRecord, machine: MachineRecord?, status: HTTPResponse.Status = .ok) async throws -> Response {
        JSONBody.response(ResourceView(resource, machine: machine, activity: await proxy.waker.activity(resource.id)), status: status)
    }
}

/// A resource as the API shows it, with its VM (if one exists) and its activity.
struct ResourceView: Encodable {
    struct VM: Encodable {
        let uuid: String
        let name: String
        let status: String
        let desired: String
        let domain: String
    }

    let id: String
    let port: Int
    let groups: [String]
    let idle_timeout: Int
    /// `/r/{id}/` and the seed's `/smart_proxy/{id}/{groups}/` (`-` for no groups).
    let url: String
    let smart_proxy_url: String
    let image: String
    let kernel_image: String?
    let initrd_image: String?
    let cmdline: String?
    let cpu_count: Int
    let mem_size: Int
    let hypervisor: String
    let run_agent: Bool
    let createdAt: Date
    let vm: VM?
    /// Requests in flight now, seconds since the last began or ended, and VM starts by requests
    /// since the appliance started.
    let open_requests: Int
    let idle_seconds: Double?
    let starts: Int

    init(_ resource: ResourceRecord, machine: MachineRecord?, activity: ResourceWaker.Activity) {
        id = resource.id
        port = resource.port
        groups = resource.requiredGroups.sorted()
        idle_timeout = resource.idleTimeout
        url = "/r/\(resource.id)/"
        smart_proxy_url = "/smart_proxy/\(resource.id)/\(resource.groups.isEmpty ? "-" : resource.groups)/"
        let spec = resource.spec
        image = spec.hda.description
        kernel_image = spec.kernel?.description
        initrd_image = spec.initrd?.description
        cmdline = spec.cmdline
        cpu_count = spec.vcpus
        mem_size = spec.memoryMiB
        hypervisor = spec.hypervisor
        run_agent = spec.runAgent
        createdAt = resource.createdAt
        vm = machine.map { VM(uuid: $0.uuid, name: $0.name, status: $0.status.rawValue, desired: $0.desired.rawValue, domain: $0.domainName) }
        open_requests = activity.open
        idle_seconds = activity.idleSeconds.map { ($0 * 10).rounded() / 10 }
        starts = activity.starts
    }
}
