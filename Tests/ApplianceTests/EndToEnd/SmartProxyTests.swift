import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The smart proxy against real guests: the test image's busybox httpd (`vmcloud.httpd=8080`)
/// in a resource's VM on libvirt's NAT network while the appliance runs with `--network user`.
@Suite(.serialized) struct SmartProxyTests {
    /// A session that really opens 32 connections at once to one host.
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 32
        configuration.timeoutIntervalForRequest = 180
        return URLSession(configuration: configuration)
    }()

    /// Any request; the status and the body as text.
    static func fetch(_ run: ApplianceRun, _ method: String, _ path: String, key: String?, body: String? = nil) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: run.appliance.baseURL + path)!)
        request.httpMethod = method
        request.timeoutInterval = 180
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await session.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    static func resource(_ id: String, port: Int, groups: String, idle: Int) -> [String: Any] {
        let cmdline = (try? String(contentsOfFile: ApplianceProcess.testImage + "/cmdline", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "console=ttyS0"
        return ["id": id, "port": port, "groups": groups, "idle_timeout": idle, "image": "test/disk.qcow2",
                "kernel_image": "test/vmlinuz", "initrd_image": "test/initrd.img", "cmdline": cmdline + " vmcloud.httpd=8080",
                "mem_size": 256]
    }

    static func client(_ run: ApplianceRun, _ email: String, groups: [String]) async throws -> String {
        let made = try await run.api.object("POST", "/v1/clients", ["email": email, "role": "application", "groups": groups], status: 201)
        return try #require(made["key"] as? String)
    }

    static func generic(_ run: ApplianceRun) async throws -> [[String: Any]] {
        try await run.api.json("/v1/vms?kind=generic") as? [[String: Any]] ?? []
    }

    /// The guest's boot id from index.html (`boot_id=<span id="boot-id">UUID</span>`) or the echo (`boot_id=UUID`).
    static func bootId(_ text: String) -> String? {
        guard let range = text.range(of: #"boot_id=(<span id="boot-id">)?[0-9a-f-]{36}"#, options: .regularExpression) else { return nil }
        return String(text[range].suffix(36))
    }

    /// 403 starts nothing; 20 concurrent cold requests start one VM and all get its answer; the
    /// path and query (without `key`) and the body reach the guest; idle past the timeout the
    /// VM stops and the next request boots it again.
    @Test func coldRequestsStartOneVMAndIdleStopsIt() async throws {
        try await withAppliance("proxy") { run in
            _ = try MachineLifecycleTests.stockImageStore(run)
            _ = try await run.api.object("POST", "/v1/resources", Self.resource("web", port: 8080, groups: "g1", idle: 5), status: 201)
            let member = try await Self.client(run, "member@example.test", groups: ["g1", "g2"])
            let outsider = try await Self.client(run, "outsider@example.test", groups: ["g2"])
            let domains = { try virshDomainNames(prefix: run.prefix + "m") }

            // A caller lacking the group: 403 at once, nothing starts.
            let (refused, why) = try await Self.fetch(run, "GET", "/r/web/", key: outsider)
            #expect(refused == 403 && why.contains("g1"), "\(refused) \(why)")
            #expect(try await Self.fetch(run, "GET", "/smart_proxy/web/g2/", key: outsider).0 == 403)
            #expect(try await Self.fetch(run, "GET", "/smart_proxy/web/g1/", key: outsider).0 == 403)
            try await Task.sleep(for: .seconds(1))
            #expect(try domains().isEmpty, "a refused request started no VM")
            #expect(try await Self.generic(run).isEmpty)

            // 20 cold requests at once, in both URL forms, some with ?key=: one VM, one boot.
            let started = Date()
            let answers = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<20 {
                    group.addTask {
                        switch i % 3 {
                        case 0: return try await Self.fetch(run, "GET", "/r/web/index.html", key: member)
                        case 1: return try await Self.fetch(run, "GET", "/smart_proxy/web/g1,g2/index.html", key: member)
                        default: return try await Self.fetch(run, "GET", "/r/web/?key=\(member)", key: nil)
                        }
                    }
                }
                var all: [(Int, String)] = []
                for try await answer in group { all.append(answer) }
                return all
            }
            let coldSeconds = Date().timeIntervalSince(started)
            #expect(answers.allSatisfy { $0.0 == 200 && $0.1.contains("vmcloud-test-guest") }, "\(answers.map { "\($0.0) \($0.1.prefix(200))" })")
            let boots = Set(answers.compactMap { Self.bootId($0.1) })
            #expect(boots.count == 1, "one boot answered all 20: \(boots)")
            let live = try domains()
            #expect(live.count == 1, "exactly one domain: \(live)")
            let vms = try await Self.generic(run)
            #expect(vms.count == 1 && vms.first?["name"] as? String == "resource.web", "\(vms)")
            let view = try await run.api.object("GET", "/v1/resources/web")
            #expect(view["starts"] as? Int == 1, "\(view)")
            print("proxy e2e: 20 concurrent cold requests answered after \(String(format: "%.1f", coldSeconds)) s")

            // What the guest sees: the path after the prefix, the query without key, the body.
            let (echoed, echo) = try await Self.fetch(run, "POST", "/r/web/cgi-bin/echo?a=1&key=\(member)&b=x%20y", key: member, body: "hello guest")
            #expect(echoed == 200, "\(echo)")
            #expect(echo.contains("method=POST") && echo.contains("uri=/cgi-bin/echo?a=1&b=x%20y") && echo.contains("query=a=1&b=x%20y"), "\(echo)")
            #expect(echo.contains("hello guest") && !echo.contains(member), "\(echo)")
            #expect(Self.bootId(echo) == boots.first)
            let (moved, _) = try await Self.fetch(run, "GET", "/smart_proxy/web/g1/cgi-bin/echo?key=\(member)", key: nil)
            #expect(moved == 200)

            // Idle past 5 s: the VM stops (scale to zero), then a request boots it again.
            let quiet = Date()
            try await eventually("the idle VM's domain is gone", timeout: 40) { try domains().isEmpty }
            let stoppedAfter = Date().timeIntervalSince(quiet)
            #expect(stoppedAfter >= 4, "not before the idle timeout (\(stoppedAfter) s)")
            let stopped = try await run.api.object("GET", "/v1/resources/web")
            #expect((stopped["vm"] as? [String: Any])?["status"] as? String == "stopped", "\(stopped)")
            let again = Date()
            let (woke, answer) = try await Self.fetch(run, "GET", "/r/web/", key: member)
            print("proxy e2e: cold start after scale to zero \(String(format: "%.1f", Date().timeIntervalSince(again))) s; stopped \(String(format: "%.1f", stoppedAfter)) s after the last request")
            #expect(woke == 200 && answer.contains("vmcloud-test-guest"), "\(answer)")
            let newBoot = try #require(Self.bootId(answer))
            #expect(newBoot != boots.first, "a new boot")
            #expect(try domains().count == 1)
            #expect(try await Self.generic(run).count == 1, "the resource keeps its one VM row")

            // Deleting the resource destroys its VM.
            _ = try await run.api.object("DELETE", "/v1/resources/web")
            try await eventually("the deleted resource's domain is gone", timeout: 30) { try domains().isEmpty }
            #expect(try await Self.fetch(run, "GET", "/r/web/", key: member).0 == 404)
        }
    }

    /// A guest port nobody listens on: after the start wait, 502 with the reason, never a hang.
    @Test func aRefusingGuestPortAnswers502WithinTheBound() async throws {
        // 45 s: the VM must be up (boot and DHCP lease under TCG) before the port can refuse;
        // 20 s was not always enough on a loaded 2-core machine.
        try await withAppliance("proxy-bad", arguments: ["--proxy-start-timeout", "45"]) { run in
            _ = try MachineLifecycleTests.stockImageStore(run)
            _ = try await run.api.object("POST", "/v1/resources", Self.resource("wrong", port: 9999, groups: "", idle: 60), status: 201)
            let started = Date()
            let (status, body) = try await Self.fetch(run, "GET", "/r/wrong/", key: run.appliance.adminKey)
            let seconds = Date().timeIntervalSince(started)
            #expect(status == 502, "\(body)")
            let error = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            #expect(error?["error"] as? String == "upstream_refused", "\(body)")
            #expect((error?["message"] as? String)?.contains("9999") == true && body.contains("refused"), "\(body)")
            #expect(seconds >= 44 && seconds < 60, "answered after \(seconds) s, bounded by --proxy-start-timeout 45")
        }
    }
}
