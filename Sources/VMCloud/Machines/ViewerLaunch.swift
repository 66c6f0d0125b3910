import Crypto
import Foundation
import Hummingbird
import VMCloudCore

/// VRun's viewer{type, project}: `PUT /v1/viewers/{project}/{kind}` ensures that exactly one VM
/// exists for that key, however many calls race and across restarts (the store's partial unique
/// index on the owner key decides), built from an image with an input disk of the given files.
/// The answer waits (bounded) until the guest has reported its IP. The viewer's access key is
/// made with it, written onto the input disk (`access-key`) for the guest's service, returned
/// to the launcher, and required by `GET` and `DELETE` (`X-Viewer-Key` header or `?key=`).
/// The viewer's service is reached through the appliance (`url`: `/viewers/{project}/{kind}/`,
/// ViewerProxyRoutes), on the one guest port given when the viewer was made.
struct ViewerLaunchRoutes {
    let machines: MachineService
    /// The appliance's address for `url`.
    let viewer: ViewerAccess

    static let defaultPort = 80

    struct Body: Decodable {
        var image: String
        var kernel_image: String?
        var initrd_image: String?
        var cmdline: String?
        var cpu_count: Int?
        var mem_size: Int?
        /// Text files for the input disk: name -> content.
        var files: [String: String]?
        /// The guest port the viewer's service listens on: the one port its `url` reaches.
        var port: Int?
        /// How long the call waits for the guest's IP (default 60 s, at most 600).
        var wait: Int?
    }

    struct View: Encodable {
        let project: String
        let kind: String
        let uuid: String
        let name: String
        let status: String
        /// The guest's address on libvirt's NAT network (for diagnostics: only this host reaches it).
        let ip: String?
        let port: Int
        /// The service on the appliance's address, `<base>/viewers/<project>/<kind>/?key=<access
        /// key>`, once the guest reported its IP.
        let url: String?
        let access_key: String
        let created: Bool
    }

    func register(on router: APIRouter) {
        let viewers = router.group("v1/viewers")
        viewers.put(":project/:kind", access: .client) { request, context in
            let (project, kind) = try key(context)
            let body = try await JSONBody.decode(Body.self, from: request, limit: 1 << 20)
            let made = try made(project: project, kind: kind, body)
            let caller = try context.requireClient()
            let (machine, created) = try await machines.store.ensureMachine(ownerKey: Self.ownerKey(project, kind), client: caller.clientId) { made }
            guard caller.mayAccess(owner: machine.clientId) else {
                throw APIError(status: .forbidden, code: "owned_by_another_client", message: "viewer \(project)/\(kind) belongs to another client")
            }
            let port = machine.spec.viewerPort ?? Self.defaultPort
            if let asked = body.port, asked != port {
                // The port is the viewer's: its URL reaches that port and no other.
                throw APIError(status: .conflict, code: "port_differs", message: "viewer \(project)/\(kind) exists with port \(port); delete it to change the port")
            }
            if created {
                machines.kick()
            } else if machine.status == .failedToStart {
                _ = try await machines.want(machine.uuid, .running, asOwner: true)  // a new launch is a new try
            }
            let ready = try await waitForIP(machine.id!, seconds: min(max(body.wait ?? 60, 0), 600))
            return view(ready, request, project: project, kind: kind, created: created, status: ready.ip == nil ? .accepted : .ok)
        }
        viewers.get(":project/:kind", access: .client) { request, context in
            let (project, kind) = try key(context)
            let machine = try await authorized(request, project: project, kind: kind)
            try context.requireAccess(owner: machine.clientId, else: APIError.notFound("no viewer \(project)/\(kind)"))
            return view(machine, request, project: project, kind: kind, created: false)
        }
        viewers.delete(":project/:kind", access: .client) { request, context in
            let (project, kind) = try key(context)
            let machine = try await authorized(request, project: project, kind: kind)
            try context.requireAccess(owner: machine.clientId, else: APIError.notFound("no viewer \(project)/\(kind)"))
            return view(try await machines.want(machine.uuid, .destroyed, asOwner: true), request, project: project, kind: kind, created: false)
        }
    }

    static func ownerKey(_ project: String, _ kind: String) -> String { "viewer:\(project)/\(kind)" }

    private func key(_ context: some RequestContext) throws -> (String, String) {
        try Self.validKey(project: context.parameters.require("project"), kind: context.parameters.require("kind"))
    }

    /// project and kind: 1 to 27 lowercase letters, digits, `_` or `-` (the VM is named
    /// `viewer.<project>.<kind>`: no two keys share a name, and generic names cannot start so).
    static func validKey(project: String, kind: String) throws -> (String, String) {
        func check(_ raw: String, _ field: String) throws -> String {
            let ok = (1...27).contains(raw.utf8.count) && raw.utf8.allSatisfy {
                ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
            }
            guard ok else { throw APIError.badRequest("\(field) must be 1 to 27 lowercase letters, digits, '_' or '-'") }
            return raw
        }
        return (try check(project, "project"), try check(kind, "kind"))
    }

    /// Validates the body into the spec a new viewer VM would get (made before the store is
    /// asked, so a bad body is refused even when the viewer exists).
    private func made(project: String, kind: String, _ body: Body) throws -> (name: String, spec: MachineSpec, accessKey: String) {
        let accessKey = Self.newAccessKey()
        var files = body.files ?? [:]
        guard files.count <= 32 else { throw APIError.badRequest("at most 32 input files") }
        for (name, content) in files {
            guard (1...64).contains(name.utf8.count), name != ".", name != "..", name != "access-key",
                  name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") })
            else { throw APIError.badRequest("input file names are 1 to 64 printable characters without '/' (and not access-key)") }
            guard content.utf8.count <= 512 * 1024 else { throw APIError.badRequest("input file \(name) is larger than 512 KiB") }
        }
        files["access-key"] = accessKey + "\n"
        if let port = body.port, !(1...65535).contains(port) { throw APIError.badRequest("port must be 1 to 65535") }
        let request = MachineRequest(
            name: "viewer.\(project).\(kind)", hypervisor: nil, cpu_count: body.cpu_count, mem_size: body.mem_size, sys_arch: nil,
            hda_image: body.image, hda_save_to: nil, hdb_image: nil, hdb_save_to: nil, cd_image: nil,
            kernel_image: body.kernel_image, initrd_image: body.initrd_image, cmdline: body.cmdline,
            run_agent: true, on_crash: "restart", stop_grace: 0)
        var (name, spec) = try request.validated(host: .init(kvmUsable: machines.kvmUsable, images: machines.images), viewer: true)
        spec.inputFiles = files
        spec.viewerPort = body.port ?? Self.defaultPort
        // The appliance reaches the guest's port on libvirt's NAT network, whatever --network says.
        spec.network = .nat
        return (name, spec, accessKey)
    }

    private func authorized(_ request: Request, project: String, kind: String) async throws -> MachineRecord {
        guard let machine = try await machines.store.machine(ownerKey: Self.ownerKey(project, kind)) else {
            throw APIError.notFound("no viewer \(project)/\(kind)")
        }
        let given = request.headers[.init("X-Viewer-Key")!] ?? request.uri.queryParameters.get("key").map { String($0) }
        guard let given, let expected = machine.accessKey, ViewerProxyAccess.matches(given, expected) else {
            throw APIError(status: .unauthorized, code: "invalid_key", message: "the viewer's access key is required (X-Viewer-Key header or ?key=)")
        }
        return machine
    }

    private func waitForIP(_ id: Int64, seconds: Int) async throws -> MachineRecord {
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        while true {
            guard let machine = try await machines.store.machine(id) else { throw MachineStoreError.notFound(String(id)) }
            if machine.ip != nil || Date() >= deadline || [.failedToStart, .destroyed].contains(machine.status) { return machine }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    private func view(_ machine: MachineRecord, _ request: Request, project: String, kind: String, created: Bool,
                      status: HTTPResponse.Status = .ok) -> Response {
        let key = machine.accessKey ?? ""
        let url = "\(viewer.baseURL(for: request))/viewers/\(project)/\(kind)/?key=\(key)"
        return JSONBody.response(View(
            project: project, kind: kind, uuid: machine.uuid, name: machine.name, status: machine.status.rawValue, ip: machine.ip,
            port: machine.spec.viewerPort ?? Self.defaultPort, url: machine.ip == nil ? nil : url, access_key: key, created: created),
            status: status)
    }

    static func newAccessKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.hex
    }
}
