import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOHTTP1
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The smart proxy without VMs: validation of resources and proxy URLs, the groups rule, the
/// forwarded path, query and headers, and the routes' refusals (which start nothing).
@Suite struct ProxyTests {
    static let images = ImageStore(root: NSTemporaryDirectory() + "vmcloud-proxy-images-\(getpid())")

    static func host() throws -> MachineRequest.Host {
        try FileManager.default.createDirectory(atPath: images.root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: images.root + "/disk.qcow2", contents: Data())
        return .init(kvmUsable: false, images: images)
    }

    static func request(_ json: String) throws -> ResourceRequest {
        try JSONDecoder().decode(ResourceRequest.self, from: Data(json.utf8))
    }

    @Test func resourceIdsAreSlugs() {
        for good in ["a", "web", "Web-1_x", "a" + String(repeating: "b", count: 63)] {
            #expect(ResourceValidation.isSlug(good), "\(good)")
        }
        for bad in ["", "1abc", "-a", "_a", "a b", "a/b", "a.b", "a%20", "é", "a" + String(repeating: "b", count: 64), "a\u{0}"] {
            #expect(!ResourceValidation.isSlug(bad), "\(bad)")
            #expect(throws: Refusal.self) { try ResourceValidation.id(bad) }
        }
    }

    @Test func aValidRequestMakesANATResourceWithSortedGroups() throws {
        let record = try Self.request(#"{"id":"web","port":8080,"groups":"g2,g1","idle_timeout":5,"image":"disk.qcow2","cmdline":"console=ttyS0 vmcloud.httpd=8080"}"#)
            .validated(host: try Self.host())
        #expect(record.id == "web" && record.port == 8080 && record.idleTimeout == 5)
        #expect(record.groups == "g1,g2" && record.requiredGroups == ["g1", "g2"])
        #expect(record.spec.network == .nat, "the host reaches the guest's port on libvirt's NAT network")
        #expect(record.spec.stopGrace == 0 && record.spec.runAgent == false && record.spec.hypervisor == "qemu")
        #expect(record.ownerKey == "resource:web" && record.machineName == "resource.web")
        let array = try Self.request(#"{"id":"web","port":80,"groups":["b","a"],"image":"disk.qcow2"}"#).validated(host: try Self.host())
        #expect(array.groups == "a,b" && array.idleTimeout == ResourceRequest.defaultIdleTimeout)
        let none = try Self.request(#"{"id":"web","port":80,"groups":"","image":"disk.qcow2"}"#).validated(host: try Self.host())
        #expect(none.requiredGroups.isEmpty)
    }

    @Test func badResourceRequestsAreRefusedNamingTheField() throws {
        let cases: [(String, String)] = [
            (#"{"id":"1web","port":80,"image":"disk.qcow2"}"#, "resource id"),
            (#"{"id":"we b","port":80,"image":"disk.qcow2"}"#, "resource id"),
            (#"{"id":"","port":80,"image":"disk.qcow2"}"#, "resource id"),
            (#"{"id":"web","port":0,"image":"disk.qcow2"}"#, "port must be 1 to 65535"),
            (#"{"id":"web","port":65536,"image":"disk.qcow2"}"#, "port must be 1 to 65535"),
            (#"{"id":"web","port":80,"groups":"g 1","image":"disk.qcow2"}"#, "group names"),
            (#"{"id":"web","port":80,"groups":"g1,,g2","image":"disk.qcow2"}"#, "group names"),
            (#"{"id":"web","port":80,"groups":"1g","image":"disk.qcow2"}"#, "group names"),
            (#"{"id":"web","port":80,"idle_timeout":0,"image":"disk.qcow2"}"#, "idle_timeout"),
            (#"{"id":"web","port":80,"idle_timeout":86401,"image":"disk.qcow2"}"#, "idle_timeout"),
            (#"{"id":"web","port":80,"image":"nope.qcow2"}"#, "no file 'nope.qcow2'"),
            (#"{"id":"web","port":80,"image":"../etc/passwd"}"#, "relative path"),
            (#"{"id":"web","port":80,"image":"disk.qcow2","mem_size":1}"#, "mem_size"),
            (#"{"id":"web","port":80,"image":"disk.qcow2","hypervisor":"xen"}"#, "not available"),
            (#"{"id":"web","port":80,"image":"disk.qcow2","initrd_image":"disk.qcow2"}"#, "initrd_image needs kernel_image"),
        ]
        for (json, message) in cases {
            do {
                _ = try Self.request(json).validated(host: try Self.host())
                Issue.record("accepted: \(json)")
            } catch let refusal as Refusal {
                // 400 or 422 once the API answers it.
                #expect(refusal.kind == .invalid || refusal.kind == .unprocessable, "\(json): \(refusal.kind)")
                #expect(refusal.message.contains(message), "\(json): \(refusal.message)")
            }
        }
        #expect(throws: DecodingError.self) { try Self.request(#"{"id":"web","port":80,"groups":5,"image":"disk.qcow2"}"#) }
        #expect(throws: DecodingError.self) { try Self.request(#"{"id":"web","port":"80","image":"disk.qcow2"}"#) }
        let tooMany = (0..<33).map { "g\($0)" }.joined(separator: ",")
        #expect(throws: Refusal.self) { try Self.request(#"{"id":"web","port":80,"groups":"\#(tooMany)","image":"disk.qcow2"}"#).validated(host: try Self.host()) }
    }

    @Test func theGroupsRule() throws {
        let app = ClientIdentity(clientId: 7, role: .application, groups: ["g1", "g2"])
        let admin = ClientIdentity(clientId: 1, role: .admin, groups: [])
        func allowed(_ client: ClientIdentity, claimed: Set<String>?, required: Set<String>) -> Bool {
            (try? ProxyAccess.check(client: client, claimed: claimed, required: required, resource: "r")) != nil
        }
        // /r/{id}: the client's own groups.
        #expect(allowed(app, claimed: nil, required: []))
        #expect(allowed(app, claimed: nil, required: ["g1"]))
        #expect(allowed(app, claimed: nil, required: ["g1", "g2"]))
        #expect(!allowed(app, claimed: nil, required: ["g3"]))
        #expect(!allowed(app, claimed: nil, required: ["g1", "g3"]))
        #expect(allowed(admin, claimed: nil, required: ["anything"]))
        // /smart_proxy/{id}/{groups}: every claim held, and the claims cover the requirement.
        #expect(allowed(app, claimed: ["g1"], required: ["g1"]))
        #expect(allowed(app, claimed: ["g1", "g2"], required: ["g2"]))
        #expect(allowed(app, claimed: [], required: []))
        #expect(!allowed(app, claimed: ["g1"], required: ["g1", "g2"]), "a required group not claimed")
        #expect(!allowed(app, claimed: ["g1", "g3"], required: ["g1"]), "a claimed group the client lacks")
        #expect(!allowed(app, claimed: ["g3"], required: ["g3"]))
        #expect(allowed(admin, claimed: ["x"], required: ["x"]))
        #expect(!allowed(admin, claimed: ["x"], required: ["y"]), "even an admin claims what the resource needs")
        let refusal = #expect(throws: APIError.self) {
            try ProxyAccess.check(client: app, claimed: nil, required: ["g3", "g1"], resource: "web")
        }
        #expect(refusal?.status == .forbidden && refusal?.code == "forbidden", "\(String(describing: refusal))")
        #expect(refusal?.message.contains("g3") == true && refusal?.message.contains("g1") == false, "names only the missing group")
        #expect(try ResourceValidation.claimedGroups("g1,g2") == ["g1", "g2"])
        #expect(try ResourceValidation.claimedGroups("g1%2Cg2") == ["g1", "g2"])
        #expect(try ResourceValidation.claimedGroups("-") == [])
        #expect(try ResourceValidation.claimedGroups("1st") == ["1st"], "any name a client may hold")
        for bad in ["g 1", "g1,,g2", "", "g1;g2", "%ZZ", String(repeating: "a", count: 65)] {
            #expect(throws: Refusal.self, "\(bad)") { try ResourceValidation.claimedGroups(bad) }
        }
    }

    @Test func theForwardedPathAndQuery() throws {
        let short = try ProxyTarget.parse(path: "/r/web/cgi-bin/echo", query: "a=1&key=SECRET&b=%20x", smart: false)
        #expect(short.resource == "web" && short.claimed == nil && short.prefix == "/r/web")
        #expect(short.pathAndQuery == "/cgi-bin/echo?a=1&b=%20x")
        let smart = try ProxyTarget.parse(path: "/smart_proxy/web/g1,g2/a/b%2Fc/", query: "%6Bey=x&k=1", smart: true)
        #expect(smart.claimed == ["g1", "g2"] && smart.prefix == "/smart_proxy/web/g1,g2")
        #expect(smart.pathAndQuery == "/a/b%2Fc/?k=1", "the rest exactly as sent; an encoded key is dropped too")
        let root = try ProxyTarget.parse(path: "/r/web/", query: "key=x", smart: false)
        #expect(root.rest == "/" && root.query == nil && root.pathAndQuery == "/")
        let bare = try ProxyTarget.parse(path: "/r/web", query: nil, smart: false)
        #expect(bare.rest.isEmpty, "answered with a redirect to /r/web/")
        #expect(throws: APIError.self) { try ProxyTarget.parse(path: "/r/1web/", query: nil, smart: false) }
        #expect(throws: Refusal.self) { try ProxyTarget.parse(path: "/smart_proxy/web/g%201/x", query: nil, smart: true) }
        #expect(ProxyTarget.withoutKey("key=a&key=b") == nil)
        #expect(ProxyTarget.withoutKey("keys=1&akey=2&key") == "keys=1&akey=2")
    }

    @Test func headersGoThroughButHopByHopAndCredentialsDoNot() {
        var fields = HTTPFields()
        for (name, value) in [("Authorization", "Bearer secret"), ("X-Vmcloud-Signature", "abc"), ("X-Vmcloud-Client", "3"),
                              ("Connection", "keep-alive, X-Private"), ("X-Private", "p"), ("Keep-Alive", "5"), ("TE", "trailers"),
                              ("Upgrade", "h2c"), ("Content-Length", "3"), ("Host", "appliance.test:8080"), ("Cookie", "a=b"),
                              ("X-Forwarded-For", "10.1.1.1"), ("X-Forwarded-Proto", "https"), ("Accept", "text/plain"), ("X-Custom", "1")] {
            fields.append(HTTPFields.Element(name: .init(name)!, value: value))
        }
        let outgoing = UpstreamForwarder.Outgoing(method: .get, pathAndQuery: "/", headers: fields, body: nil, bodyLength: nil,
                                                  prefix: "/r/web", peer: "127.0.0.1")
        let headers = UpstreamForwarder.requestHeaders(outgoing)
        for gone in ["Authorization", "X-Vmcloud-Signature", "X-Vmcloud-Client", "Connection", "X-Private", "Keep-Alive", "TE", "Upgrade", "Host", "Content-Length"] {
            #expect(headers[gone].isEmpty, "\(gone) is not forwarded")
        }
        #expect(headers["Cookie"] == ["a=b"] && headers["Accept"] == ["text/plain"] && headers["X-Custom"] == ["1"])
        #expect(headers["X-Forwarded-For"] == ["10.1.1.1, 127.0.0.1"])
        #expect(headers["X-Forwarded-Proto"] == ["http"], "the proxy's own scheme, not the caller's claim")
        #expect(headers["X-Forwarded-Host"] == ["appliance.test:8080"] && headers["X-Forwarded-Prefix"] == ["/r/web"])

        var upstream = HTTPHeaders()
        for (name, value) in [("Connection", "close, X-Hop"), ("X-Hop", "1"), ("Transfer-Encoding", "chunked"), ("Set-Cookie", "a=1"),
                              ("Set-Cookie", "b=2"), ("Content-Type", "text/html"), ("Keep-Alive", "timeout=5")] {
            upstream.add(name: name, value: value)
        }
        let back = UpstreamForwarder.responseHeaders(upstream)
        #expect(back[values: .setCookie] == ["a=1", "b=2"], "repeated headers stay")
        #expect(back[.contentType] == "text/html")
        #expect(back[.connection] == nil && back[.transferEncoding] == nil && back[.init("X-Hop")!] == nil && back[.init("Keep-Alive")!] == nil)
    }

    /// Start once: 20 concurrent cold wake-ups share one bring-up and one machine row (the
    /// reconciler is not running here, so each ends in a bounded 504, never a hang).
    @Test func concurrentWakeUpsMakeOneVMAndEndWithinTheBound() async throws {
        let harness = try await APIHarness()
        defer { try? FileManager.default.removeItem(atPath: harness.directory) }
        try FileManager.default.createDirectory(atPath: harness.machines.images.root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: harness.machines.images.root + "/disk.qcow2", contents: Data())
        let resource = try Self.request(#"{"id":"web","port":80,"image":"disk.qcow2"}"#)
            .validated(host: .init(kvmUsable: false, images: harness.machines.images))
        try await harness.pool.store.createResource(resource)
        let waker = ResourceWaker(machines: harness.machines, settings: .init(startTimeout: 1), logger: Logger(label: "test"))
        let started = Date()
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    do { _ = try await waker.upstream(for: resource); return "up" } catch let error as Refusal { return error.code } catch { return "\(error)" }
                }
            }
            var all: [String] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        #expect(outcomes == Array(repeating: "upstream_timeout", count: 20), "\(outcomes)")
        #expect(Date().timeIntervalSince(started) < 5)
        let machines = try await harness.pool.store.machines()
        #expect(machines.count == 1 && machines.first?.ownerKey == "resource:web" && machines.first?.name == "resource.web")
        #expect(machines.first?.spec.network == .nat)
        // A deleted resource's wake-up is a 404 and makes no VM.
        _ = try await harness.pool.store.deleteResource("web")
        await #expect(throws: Refusal.self) { _ = try await waker.upstream(for: resource) }
        #expect(try await harness.pool.store.machines().allSatisfy { $0.desired == .destroyed })
    }

    /// Shutting down ends every wait at once (the server's graceful shutdown waits for requests
    /// in flight), with 503 `shutting_down`.
    @Test func closingEndsWaitsAtOnce() async throws {
        let harness = try await APIHarness()
        defer { try? FileManager.default.removeItem(atPath: harness.directory) }
        try FileManager.default.createDirectory(atPath: harness.machines.images.root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: harness.machines.images.root + "/disk.qcow2", contents: Data())
        let resource = try Self.request(#"{"id":"web","port":80,"image":"disk.qcow2"}"#)
            .validated(host: .init(kvmUsable: false, images: harness.machines.images))
        try await harness.pool.store.createResource(resource)
        let waker = ResourceWaker(machines: harness.machines, settings: .init(startTimeout: 60), logger: Logger(label: "test"))
        let started = Date()
        async let outcomes = withTaskGroup(of: String.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    do { _ = try await waker.upstream(for: resource); return "up" } catch let error as Refusal { return error.code } catch { return "\(error)" }
                }
            }
            var all: [String] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        try await Task.sleep(for: .milliseconds(500))
        waker.close()
        #expect(await outcomes == Array(repeating: "shutting_down", count: 5))
        #expect(Date().timeIntervalSince(started) < 3, "ended within a poll, not after the 60 s start wait")
    }

    /// A request arriving while an idle stop runs waits for it, then wakes the VM again (here:
    /// a bounded 504, no reconciler runs). It once spun on the actor, awaiting the finished stop
    /// task again and again, and hung the appliance.
    @Test(.timeLimit(.minutes(1))) func aRequestDuringAStopWaitsThenWakesAgain() async throws {
        let harness = try await APIHarness()
        defer { try? FileManager.default.removeItem(atPath: harness.directory) }
        try FileManager.default.createDirectory(atPath: harness.machines.images.root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: harness.machines.images.root + "/disk.qcow2", contents: Data())
        let resource = try Self.request(#"{"id":"web","port":80,"idle_timeout":1,"image":"disk.qcow2"}"#)
            .validated(host: .init(kvmUsable: false, images: harness.machines.images))
        let store = harness.pool.store
        try await store.createResource(resource)
        _ = try await store.ensureResourceMachine("web")
        let waker = ResourceWaker(machines: harness.machines, settings: .init(startTimeout: 1, stopTimeout: 1), logger: Logger(label: "test"))
        let now = Date()
        #expect(await waker.stopIfIdle(resource, now: now) == false)
        #expect(await waker.stopIfIdle(resource, now: now.addingTimeInterval(2)) == true, "a stop begins")
        // The stop task writes the wish; the request below must find it under way.
        try await eventually("the VM wanted stopped", timeout: 5) { try await store.machines().first?.desired == .stopped }
        let started = Date()
        do {
            _ = try await waker.upstream(for: resource)
            Issue.record("no VM can answer here")
        } catch let error as Refusal {
            #expect(error.code == "upstream_timeout", "\(error.message)")
        }
        #expect(Date().timeIntervalSince(started) < 6, "the stop's wait (1 s) and the start wait (1 s), not a hang")
        #expect(try await store.machines().first?.desired == .running, "the request wanted it running again")
    }

    /// The stop decision: never while a request is open, a full idle timeout after the last
    /// activity, and a first sighting (after a restart) starts the clock.
    @Test func idleStopNeedsAFullQuietTimeout() async throws {
        let harness = try await APIHarness()
        defer { try? FileManager.default.removeItem(atPath: harness.directory) }
        let waker = ResourceWaker(machines: harness.machines, logger: Logger(label: "test"))
        let resource = try Self.request(#"{"id":"web","port":80,"idle_timeout":5,"image":"disk.qcow2"}"#).validated(host: try Self.host())
        let now = Date()
        #expect(await waker.stopIfIdle(resource, now: now) == false, "first sighting starts the clock")
        #expect(await waker.stopIfIdle(resource, now: now.addingTimeInterval(4)) == false)
        await waker.begin("web")
        #expect(await waker.stopIfIdle(resource, now: now.addingTimeInterval(60)) == false, "a request is open")
        await waker.end("web")
        #expect(await waker.activity("web").open == 0)
        #expect(await waker.stopIfIdle(resource, now: Date().addingTimeInterval(4.5)) == false)
        #expect(await waker.stopIfIdle(resource, now: Date().addingTimeInterval(5.5)) == true)
    }
}

/// The resource and proxy routes through the real router and AuthMiddleware, over libvirt's
/// test driver: every refusal comes before anything starts.
@Suite struct ProxyRouteTests {
    @Test func resourceCRUDAndRefusalsThatStartNothing() async throws {
        let harness = try await APIHarness()
        try FileManager.default.createDirectory(atPath: harness.machines.images.root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: harness.machines.images.root + "/disk.qcow2", contents: Data())
        let store = harness.pool.store
        let (_, appKey) = try await store.createClient(email: "app@example.test", role: .application, groups: ["g1"])
        let (_, otherKey) = try await store.createClient(email: "other@example.test", role: .application, groups: ["g2"])
        let app = appKey.text, other = otherKey.text
        let admin = harness.adminKey
        try await harness.test(authenticated: false) { client in
            /// `key`: "admin" (the default) for the admin key, nil for none.
            func call(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, key: String? = "admin") async throws -> (Int, String) {
                var headers = HTTPFields()
                if let key { headers[.authorization] = "Bearer \(key == "admin" ? admin : key)" }
                return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
                    (Int(response.status.code), String(buffer: response.body))
                }
            }
            let body = #"{"id":"web","port":8080,"groups":"g1","idle_timeout":5,"image":"disk.qcow2"}"#
            // Registering: admin only, validated.
            #expect(try await call(.post, "/v1/resources", body, key: app).0 == 403)
            #expect(try await call(.post, "/v1/resources", #"{"id":"web","port":0,"image":"disk.qcow2"}"#).0 == 400)
            #expect(try await call(.post, "/v1/resources", "not json").0 == 400)
            #expect(try await call(.post, "/v1/resources", #"{"id":"web"}"#).1.contains("missing field"))
            let (created, createdBody) = try await call(.post, "/v1/resources", body)
            #expect(created == 201, "\(createdBody)")
            #expect(createdBody.contains(#""url":"/r/web/""#) && createdBody.contains(#""smart_proxy_url":"/smart_proxy/web/g1/""#))
            let (dup, dupBody) = try await call(.post, "/v1/resources", body)
            #expect(dup == 409 && dupBody.contains("resource_exists"))
            #expect(try await call(.get, "/v1/resources").1.contains(#""id":"web""#))
            #expect(try await call(.get, "/v1/resources/web").0 == 200)
            #expect(try await call(.get, "/v1/resources/nope").0 == 404)
            #expect(try await call(.get, "/v1/resources/1bad").0 == 400)
            #expect(try await call(.get, "/v1/resources/web", key: app).0 == 403)

            // Proxying: a key first, then the resource, then the groups, all before any start.
            #expect(try await call(.get, "/r/web/", key: nil).0 == 401)
            #expect(try await call(.get, "/r/nope/", key: app).0 == 404)
            #expect(try await call(.get, "/r/web/", key: other).0 == 403, "the client lacks g1")
            #expect(try await call(.get, "/smart_proxy/web/g2/", key: other).0 == 403, "g2 does not cover g1")
            #expect(try await call(.get, "/smart_proxy/web/g1/", key: other).0 == 403, "other does not hold g1")
            #expect(try await call(.get, "/smart_proxy/web/g1,g3/x", key: app).0 == 403, "app does not hold g3")
            #expect(try await call(.get, "/smart_proxy/web/g%201/", key: app).0 == 400)
            #expect(try await call(.post, "/r/web/cgi-bin/echo?key=\(other)", "x", key: nil).0 == 403, "?key= identifies the caller")
            let (redirect, _) = try await call(.get, "/r/web?key=\(app)")
            #expect(redirect == 308)
            #expect(try await store.machines().isEmpty, "no refusal made a VM")

            // Deleting: the resource goes (and its VM, had it one).
            #expect(try await call(.delete, "/v1/resources/web", key: app).0 == 403)
            #expect(try await call(.delete, "/v1/resources/web").0 == 200)
            #expect(try await call(.delete, "/v1/resources/web").0 == 404)
            #expect(try await call(.get, "/r/web/", key: app).0 == 404)
        }
    }
}
