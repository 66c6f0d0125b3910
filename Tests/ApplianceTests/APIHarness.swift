import Foundation
import HTTPTypes
import GRDB
import Hummingbird
import HummingbirdTesting
import Libvirt
import Logging
import NIOPosix
@testable import VMCloud

/// The real router over a real store and libvirt's own test driver (test:///default): enough for
/// request handling that boots nothing. Tests that boot guests run the real binary instead.
struct APIHarness {
    let pool: Pool
    let blobs: BlobStore
    let viewer: ViewerAccess
    let directory: String
    let libvirt: LibvirtClient
    /// Generic VMs over the same test driver (its reconciler is not running: requests only).
    let machines: MachineService
    /// The admin key every request of `test` carries unless it sets its own Authorization.
    let adminKey: String
    let authenticator: Authenticator

    init() async throws {
        directory = try makeTemporaryDirectory("api")
        let state = StateDirectory(root: directory)
        try state.prepare()
        let store = try Store(path: state.database)
        libvirt = LibvirtClient(uri: "test:///default")
        try await libvirt.connect()
        let image = GuestImage(directory: directory, disk: directory + "/disk.qcow2", kernel: nil, initrd: nil, cmdline: nil)
        let hypervisor = Hypervisor(
            libvirt: libvirt, state: state, image: image, accelerator: .tcg, instanceId: store.instanceId,
            memoryMiB: 128, vcpus: 1)
        blobs = try BlobStore(root: state.blobsDir)
        viewer = ViewerAccess(tokens: try AccessTokens.load(path: state.viewerSecret), store: store,
                              vncSocket: { [state] in state.vncSocket(vm: $0) })
        let captures = CaptureReceiver(blobs: blobs, logger: Logger(label: "test"))
        let reconciler = MachineReconciler(
            store: store, libvirt: libvirt, state: state, disks: MachineDisks(images: ImageStore(root: state.imagesDir), qemuImg: "/usr/bin/qemu-img"),
            network: .user, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        machines = MachineService(reconciler: reconciler, images: ImageStore(root: state.imagesDir), kvmUsable: false)
        adminKey = try await AdminKey.ensure(store: store, path: state.adminKey)!.text
        authenticator = Authenticator(store: store, trusted: .loopback, counter: RequestCounter())
        pool = Pool(store: store, hypervisor: hypervisor, captures: captures, settings: PoolSettings(),
                    group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    }

    /// Runs `body` against the router; its requests carry the admin key (`authenticated`
    /// false: none, as from a caller without a key).
    func test(authenticated: Bool = true, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let app = Application(router: ApplianceServer.router(
            pool: pool, authenticator: authenticator, blobs: blobs, viewer: viewer, screens: ScreenshotCache { [libvirt] in try await libvirt.screenshot(domainName: $0) },
            audio: AudioRoutes(access: viewer, relay: nil, sinkName: { "vm\($0)" }), machines: machines,
            proxy: SmartProxy(machines: machines, logger: Logger(label: "test"))))
        let key = authenticated ? adminKey : nil
        try await app.test(.router) { client in try await body(KeyedTestClient(inner: client, key: key)) }
        await libvirt.close()
    }

    /// Every row of every table, to prove that a rejected request changed nothing.
    func snapshot() async throws -> [String] {
        try await pool.store.pool.read { db in
            var rows: [String] = []
            for table in ["pool_size", "batch", "handle", "vm", "machine", "event", "meta"] {
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table)") { rows.append("\(table): \(row)") }
            }
            return rows
        }
    }
}

/// Adds `Authorization: Bearer KEY` to every request that has none.
struct KeyedTestClient: TestClientProtocol {
    let inner: any TestClientProtocol
    let key: String?

    func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
        var headers = headers
        if let key, headers[.authorization] == nil, headers[HTTPField.Name(RequestSignature.signatureHeader)!] == nil {
            headers[.authorization] = "Bearer \(key)"
        }
        return try await inner.executeRequest(uri: uri, method: method, headers: headers, body: body)
    }

    var port: Int? { inner.port }
}
