import Foundation
import HTTPTypes
import GRDB
import Hummingbird
import HummingbirdTesting
import Libvirt
import Logging
import NIOPosix
@testable import VMCloud
@testable import VMCloudCore

/// The real router over a real store and libvirt's own test driver (test:///default): enough for
/// request handling that boots nothing. Tests that boot guests run the real binary instead.
struct APIHarness {
    /// The appliance's own wiring (`buildApplication`'s) over the test driver, user networking
    /// and no audio; its services are not running: requests only.
    let parts: ApplianceParts
    let directory: String
    /// The admin key every request of `test` carries unless it sets its own Authorization.
    let adminKey: String

    var pool: Pool { parts.pool }
    var engine: VMEngine { parts.engine }
    var blobs: BlobStore { parts.blobs }
    var viewer: ViewerAccess { parts.viewer }
    var libvirt: LibvirtClient { parts.libvirt }
    var machines: MachineService { parts.machines }
    var authenticator: Authenticator { parts.authenticator }

    init() async throws {
        directory = try makeTemporaryDirectory("api")
        var config = ServeConfig.onTestDriver(directory: directory)
        config.memoryMiB = 128
        config.vcpus = 1
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        parts = try await ApplianceParts.wire(config, logger: logger)
        adminKey = try String(contentsOfFile: parts.state.adminKey, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `body` against the router; its requests carry the admin key (`authenticated`
    /// false: none, as from a caller without a key).
    func test(authenticated: Bool = true, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let app = Application(router: parts.router())
        let key = authenticated ? adminKey : nil
        try await app.test(.router) { client in try await body(KeyedTestClient(inner: client, key: key)) }
        await libvirt.close()
    }

    /// A running domain for pool VM `vm` on libvirt's test driver, which boots nothing: no
    /// kernel, disk, agent channel, serial log or screen.
    func createTestDomain(for vm: VMRecord) async throws {
        var definition = pool.hypervisor.definition(for: vm)
        (definition.kernelBoot, definition.diskPath, definition.channel, definition.serialLogPath, definition.vncSocketPath) = (nil, nil, nil, nil, nil)
        _ = try await libvirt.createTransientDomain(xml: definition.xml())
    }

    /// Removes the state directory and closes libvirt, for a test that drives a router of its own.
    func close() async {
        try? FileManager.default.removeItem(atPath: directory)
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
