import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The real `appliance` binary serving on loopback, against real libvirt (qemu:///system, TCG)
/// and the test image. Its log goes to a file that failures print.
final class ApplianceProcess: @unchecked Sendable {
    let stateDir: String
    let port: Int
    let logPath: String
    let image: GuestImageChoice
    /// `serve --network`: NAT, the default a user runs, unless a test is about user networking.
    let network: Network
    /// More `serve` flags, after the usual ones (e.g. `--trusted-network`).
    let extraArguments: [String]
    /// Added to the test's environment for the next `start()` (e.g. `VMCLOUD_TEST_GATES`).
    var environment: [String: String] = [:]
    private var process: Process?

    static var binary: String { repositoryRoot + "/.build/debug/appliance" }
    static var testImage: String { GuestImageChoice.test.directory }

    /// The two images tests boot: the tiny one (agent with a file-backed browser) and the real
    /// browser image (Chromium).
    enum GuestImageChoice: Sendable {
        case test, browser

        var directory: String { repositoryRoot + (self == .test ? "/images/test/out" : "/images/browser/image") }
        var arguments: [String] {
            self == .test ? ["--memory", "256", "--vcpus", "1", "--boot-timeout", "120", "--agent-timeout", "30"]
                : ["--memory", "2048", "--vcpus", "2", "--boot-timeout", "600", "--agent-timeout", "400"]
        }
        var buildHint: String { self == .test ? "make test-image" : "make browser-image" }
    }

    /// `serve --network`: libvirt's NAT network "default", or QEMU's user networking.
    enum Network: String, Sendable {
        case nat, user
    }

    init(stateDir: String, image: GuestImageChoice = .test, network: Network = .nat, extraArguments: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw Failure("\(Self.binary) missing: run `swift build` (make test does)")
        }
        guard FileManager.default.fileExists(atPath: image.directory + "/disk.qcow2") else {
            throw Failure("guest image missing in \(image.directory): run `\(image.buildHint)`")
        }
        self.image = image
        self.network = network
        self.extraArguments = extraArguments
        self.stateDir = stateDir
        self.port = try Self.freePort()
        self.logPath = stateDir + ".log"
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts the binary and waits until the API answers.
    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "serve", "--state-dir", stateDir, "--listen", "127.0.0.1:\(port)", "--accel", "tcg",
            "--image", image.directory, "--network", network.rawValue, "--log-level", "debug",
        ] + image.arguments + extraArguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            // The admin key file is written before the server listens.
            if let (status, _) = try? await api.get("/v1/pool"), status == 200 { return }
            guard process.isRunning else { throw Failure("appliance exited at start:\n\(logTail())") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure("appliance did not answer within 30 s:\n\(logTail())")
    }

    /// The admin client's key, written by the appliance at first start.
    var adminKey: String? {
        (try? String(contentsOfFile: stateDir + "/admin.key", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A client with the admin key.
    var api: HTTPTestClient { HTTPTestClient(baseURL: baseURL, key: adminKey) }

    /// Whether the process is still running (it did not exit by itself).
    var isRunning: Bool { process?.isRunning ?? false }

    /// SIGKILL: no cleanup, no graceful shutdown.
    func kill9() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    func logTail(_ lines: Int = 60) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    static func freePort() throws -> Int {
        // Port 0: the kernel picks a free one, which getsockname reads back.
        let (fd, port) = withLoopbackSocket(port: 0) { fd, address, length -> Int? in
            var length = length
            guard bind(fd, address, length) == 0, getsockname(fd, address, &length) == 0 else { return nil }
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
        defer { close(fd) }
        guard let port else { throw Failure("cannot find a free port") }
        return port
    }
}

/// A plain HTTP client (URLSession) for the API.
struct HTTPTestClient: Sendable {
    let baseURL: String
    /// Sent as `Authorization: Bearer KEY` unless a request sets its own.
    var key: String? = nil

    /// A request with the client's key.
    func urlRequest(_ method: String, _ path: String) -> URLRequest {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        return request
    }

    /// The same client with another key (nil: none).
    func with(key: String?) -> HTTPTestClient { HTTPTestClient(baseURL: baseURL, key: key) }

    func request(_ method: String, _ path: String) async throws -> (Int, Data) {
        var request = urlRequest(method, path)
        request.timeoutInterval = 30
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data)
    }

    func get(_ path: String) async throws -> (Int, Data) { try await request("GET", path) }

    /// POST a JSON body, requiring a 2xx, returning the decoded answer.
    func postJSON(_ path: String, _ body: Any) async throws -> Any {
        var request = urlRequest("POST", path)
        request.timeoutInterval = 300
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as! HTTPURLResponse).statusCode
        guard (200..<300).contains(status) else {
            throw ApplianceProcess.Failure("POST \(path): \(status) \(String(decoding: data, as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    /// GET raw bytes, requiring a 200.
    func bytes(_ path: String) async throws -> Data {
        let (status, data) = try await get(path)
        guard status == 200 else { throw ApplianceProcess.Failure("GET \(path): \(status)") }
        return data
    }
    func post(_ path: String) async throws -> (Int, Data) { try await request("POST", path) }

    /// GET a JSON document, requiring a 200.
    func json(_ path: String) async throws -> Any {
        let (status, data) = try await get(path)
        guard status == 200 else { throw ApplianceProcess.Failure("GET \(path): \(status) \(String(decoding: data, as: UTF8.self))") }
        return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    /// POST, requiring a 200, returning the body as text.
    func postOK(_ path: String) async throws -> String {
        let (status, data) = try await post(path)
        let body = String(decoding: data, as: UTF8.self)
        guard status == 200 else { throw ApplianceProcess.Failure("POST \(path): \(status) \(body)") }
        return body
    }

    func vms() async throws -> [[String: Any]] { try await json("/v1/vms") as! [[String: Any]] }
    func handleStatus(_ handle: String) async throws -> [String: Any] { try await json("/handle-status/\(handle)") as! [String: Any] }
}

/// Polls until `condition` holds, failing with `what` after `timeout` seconds.
func eventually(_ what: String, timeout: TimeInterval, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(200))
    }
    throw ApplianceProcess.Failure("timed out after \(Int(timeout)) s waiting for: \(what)")
}

/// libvirt's own list of domains, for comparing the appliance's view with the truth.
func virshDomainNames(prefix: String) throws -> Set<String> {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/virsh")
    process.arguments = ["-c", "qemu:///system", "list", "--all", "--name"]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw ApplianceProcess.Failure("virsh list failed") }
    return Set(output.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) })
}

/// Destroys every domain whose name starts with `prefix` (test cleanup, even after a failure),
/// and hands their NAT leases back, as the appliance does for the domains it destroys: `make
/// test` boots a few hundred guests, more than the network's 253 addresses with 1 h leases.
func virshDestroyAll(prefix: String) {
    let names = (try? virshDomainNames(prefix: prefix)) ?? []
    let macs = names.compactMap { try? NATNetwork.mac(domain: $0) }
    defer { NATNetwork.release(macs: macs) }
    for name in names {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/virsh")
        process.arguments = ["-c", "qemu:///system", "destroy", name]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        process.waitUntilExit()
    }
}

/// One running appliance for a test: its process, an API client, its instance id and domain
/// prefix, and a scratch directory.
struct ApplianceRun {
    let appliance: ApplianceProcess
    let api: HTTPTestClient
    let instance: String
    let directory: String
    var prefix: String { "vmcloud-\(instance)-" }

    /// VMs that are not destroyed.
    func live() async throws -> [[String: Any]] { try await api.vms().filter { $0["state"] as? String != "destroyed" } }
}

/// Starts an appliance on a fresh state directory, runs `body`, and always cleans up: stops the
/// process, destroys its domains, removes its files. A failure carries the appliance's log.
///
/// `whileStarting` runs beside the start (the appliance is up only once both are done): a test
/// that holds the start at a `TestGate` breaks something there and opens the gate.
func withAppliance(_ label: String, image: ApplianceProcess.GuestImageChoice = .test,
                   network: ApplianceProcess.Network = .nat, arguments: [String] = [],
                   environment: [String: String] = [:],
                   whileStarting: @Sendable (ApplianceProcess) async throws -> Void = { _ in },
                   _ body: (ApplianceRun) async throws -> Void) async throws {
    let dir = try makeTemporaryDirectory(label)
    let appliance = try ApplianceProcess(stateDir: dir + "/state", image: image, network: network, extraArguments: arguments)
    appliance.environment = environment
    do {
        async let started: Void = appliance.start()
        try await whileStarting(appliance)
        try await started
    } catch {
        appliance.stop()
        _ = try? runTool("/usr/bin/pkill", ["-f", "socket=\(appliance.stateDir)/audio/native"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        throw ApplianceProcess.Failure("\(error)\n--- appliance log ---\n\(appliance.logTail(120))")
    }
    let api = appliance.api
    let instance = (try await api.json("/v1/pool") as! [String: Any])["instance"] as! String
    let run = ApplianceRun(appliance: appliance, api: api, instance: instance, directory: dir)
    defer {
        appliance.stop()
        virshDestroyAll(prefix: run.prefix)
        // The appliance stops the PulseAudio daemon it started; one it adopted after a kill -9
        // outlives it, so end any daemon on this state directory's socket.
        _ = try? runTool("/usr/bin/pkill", ["-f", "socket=\(appliance.stateDir)/audio/native"])
        try? FileManager.default.removeItem(atPath: dir)
    }
    do {
        try await body(run)
    } catch {
        Issue.record("\(error)\n--- appliance log ---\n\(appliance.logTail(120))")
    }
}
