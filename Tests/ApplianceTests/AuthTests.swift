import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
@testable import Appliance
@testable import VMCloud
@testable import VMCloudCore

/// Client authentication through the real router: bearer keys, signed requests (tampering,
/// replays, stale timestamps), roles and ownership, key rotation and revocation, registration,
/// statistics; and the pieces on their own (trusted networks, the signature headers).
@Suite struct AuthTests {
    // MARK: - helpers

    struct Answer: CustomStringConvertible {
        let status: Int
        let text: String
        var json: Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var array: [[String: Any]] { json as? [[String: Any]] ?? [] }
        var error: String? { object["error"] as? String }
        var description: String { "\(status) \(text.prefix(300))" }
    }

    static func send(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, body: String? = nil,
                     headers: HTTPFields = [:]) async throws -> Answer {
        let response = try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        return Answer(status: Int(response.status.code), text: String(buffer: response.body))
    }

    static func bearer(_ key: String) -> HTTPFields { [.authorization: "Bearer \(key)"] }

    static let clientHeader = HTTPField.Name("X-Vmcloud-Client")!
    static let timestampHeader = HTTPField.Name("X-Vmcloud-Timestamp")!
    static let nonceHeader = HTTPField.Name("X-Vmcloud-Nonce")!
    static let signatureHeader = HTTPField.Name("X-Vmcloud-Signature")!

    /// The four headers of a signed request (the format is pinned by `signingMatchesTheDocumentedVector`).
    static func signed(_ method: String, _ uri: String, body: String = "", client: Int64, key: String,
                       timestamp: Int64 = Int64(Date().timeIntervalSince1970), nonce: String = UUID().uuidString) -> HTTPFields {
        let canonical = RequestSignature.canonical(method: method, path: uri, timestamp: timestamp, nonce: nonce, body: Array(body.utf8))
        return [clientHeader: String(client), timestampHeader: String(timestamp), nonceHeader: nonce,
                signatureHeader: RequestSignature.sign(canonical, key: ClientKey.signingKey(key))]
    }

    /// Registers a client with the admin key; its id and key.
    static func register(_ client: any TestClientProtocol, _ email: String, role: String? = nil, groups: [String]? = nil,
                         adminKey: String) async throws -> (id: Int64, key: String) {
        var body: [String: Any] = ["email": email]
        if let role { body["role"] = role }
        if let groups { body["groups"] = groups }
        let answer = try await send(client, .post, "/v1/clients", body: json(body), headers: bearer(adminKey))
        try #require(answer.status == 201, "register \(email): \(answer)")
        let id = try #require(answer.object["id"] as? Int)
        let key = try #require(answer.object["key"] as? String)
        return (Int64(id), key)
    }

    static func json(_ value: Any) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: value), as: UTF8.self)
    }

    static func adminId(_ client: any TestClientProtocol, _ key: String) async throws -> Int64 {
        let me = try await send(client, .get, "/v1/clients/me", headers: bearer(key))
        return Int64(try #require(me.object["id"] as? Int, "\(me)"))
    }

    // MARK: - bearer keys

    @Test func requestsWithoutAKeyAre401() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/pool"), (.get, "/v1/batches"), (.get, "/v1/handles"), (.get, "/v1/clients/me"),
                                  (.get, "/v1/jobs"), (.post, "/v1/batches"),
                                  // the six vmcloud endpoints: router tests have no peer address, so no trusted network
                                  (.post, "/set-pool-size/0/0/0"), (.post, "/prepare-batch/1/http%3A%2F%2Fa.test%2F"),
                                  (.post, "/lock/1"), (.post, "/release/1"), (.get, "/handle-status/1"), (.post, "/cancel-batch/1")] {
                let answer = try await Self.send(client, method, uri)
                #expect(answer.status == 401 && answer.error == "unauthenticated", "\(method) \(uri): \(answer)")
            }
            // The same request with the admin key passes: the 401 was the missing key.
            #expect(try await Self.send(client, .get, "/v1/pool", headers: Self.bearer(harness.adminKey)).status == 200)
            #expect(try await Self.send(client, .post, "/set-pool-size/0/0/0", headers: Self.bearer(harness.adminKey)).status == 200)
        }
    }

    @Test func aWrongKeyIs401() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let lookalike = "vmc_" + String(repeating: "A", count: 43)
            let truncated = String(harness.adminKey.dropLast())
            for authorization in ["Bearer \(lookalike)", "Bearer \(truncated)", "Bearer \(harness.adminKey)x", "Bearer ",
                                  "Basic \(harness.adminKey)", harness.adminKey, "Bearer vmc_../../etc/passwd"] {
                let answer = try await Self.send(client, .get, "/v1/pool", headers: [.authorization: authorization])
                #expect(answer.status == 401 && answer.error == "unauthenticated", "\(authorization): \(answer)")
            }
            // ?key= with a wrong key on a vmcloud endpoint, and a right key where ?key= is not accepted.
            #expect(try await Self.send(client, .post, "/set-pool-size/0/0/0?key=\(lookalike)").status == 401)
            #expect(try await Self.send(client, .get, "/v1/pool?key=\(harness.adminKey)").status == 401, "?key= is for the six vmcloud endpoints only")
            #expect(try await Self.send(client, .post, "/set-pool-size/0/0/0?key=\(harness.adminKey)").status == 200)
            // The scheme is case-insensitive.
            #expect(try await Self.send(client, .get, "/v1/pool", headers: [.authorization: "bearer \(harness.adminKey)"]).status == 200)
        }
    }

    @Test func openPathsNeedNoClientKey() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            // Each of these has its own credential (a viewer or audio token) or none; what they
            // answer without one is theirs, never the client-key 401.
            for uri in ["/v1/openapi.yaml", "/viewer/1", "/v1/vms/1/vnc/access", "/v1/vms/1/vnc", "/audio/nope", "/audio/nope/player"] {
                let answer = try await Self.send(client, .get, uri)
                #expect(answer.error != "unauthenticated" && answer.status < 500, "\(uri): \(answer)")
            }
            #expect(try await Self.send(client, .get, "/v1/vms/1/vnc/access").error == "invalid_token")
        }
    }

    // MARK: - signed requests

    /// The documented format (README, "Signed requests"), computed independently in Python:
    /// key = SHA-256("vmcloud-signing-key:" + KEY), HMAC-SHA256 over
    /// METHOD \n PATH?QUERY \n TIMESTAMP \n NONCE \n hex(sha256(body)).
    @Test func signingMatchesTheDocumentedVector() {
        let key = "vmc_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
        #expect(ClientKey.looksValid(key))
        #expect(ClientKey.signingKey(key).hex == "926255a64c66340ad6cd2c6a3a73201d5f1e4f09d2c3fc71d311b3b6fdfa7fba")
        #expect(ClientKey.hash(key) == "7bc11cadd7fc1bfd6bd3374fac97f5fd7c30586a8f9b8100453782d7680af4a9")
        let body = #"{"size":1,"homepage":"http://a.test/"}"#
        let canonical = RequestSignature.canonical(method: "POST", path: "/v1/batches?x=1", timestamp: 1_700_000_000, nonce: "nonce-1234", body: Array(body.utf8))
        #expect(canonical == "POST\n/v1/batches?x=1\n1700000000\nnonce-1234\ned2e9f08239e137ff676b287481d503beb4b22f33eb0318d904672a72a45fdaf")
        #expect(RequestSignature.sign(canonical, key: ClientKey.signingKey(key)) == "6f407d8c934c230613b2c35d568963215fa78df4dec4913f2bb66d9f687ec6a0")
    }

    @Test func aCorrectSignatureIsAccepted() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let admin = try await Self.adminId(client, harness.adminKey)
            let key = harness.adminKey
            #expect(try await Self.send(client, .get, "/v1/pool", headers: Self.signed("GET", "/v1/pool", client: admin, key: key)).status == 200)
            // The query is part of what is signed, as sent.
            let events = "/v1/events?limit=5"
            #expect(try await Self.send(client, .get, events, headers: Self.signed("GET", events, client: admin, key: key)).status == 200)
            // A body.
            let body = #"{"size":1,"homepage":"http://a.test/"}"#
            let created = try await Self.send(client, .post, "/v1/batches", body: body,
                                              headers: Self.signed("POST", "/v1/batches", body: body, client: admin, key: key))
            #expect(created.status == 201, "\(created)")
            #expect(created.object["homepage"] as? String == "http://a.test/", "the signed body reached the route")
            // A vmcloud endpoint with a percent-encoded segment: the path is signed as sent.
            let legacy = "/prepare-batch/1/http%3A%2F%2Fb.test%2F"
            let prepared = try await Self.send(client, .post, legacy, headers: Self.signed("POST", legacy, client: admin, key: key))
            #expect(prepared.status == 200 && Int(prepared.text) != nil, "\(prepared)")
            // Upper-case hex is the same signature.
            var upper = Self.signed("GET", "/v1/pool", client: admin, key: key)
            upper[Self.signatureHeader] = upper[Self.signatureHeader]!.uppercased()
            #expect(try await Self.send(client, .get, "/v1/pool", headers: upper).status == 200)
            // An application signs with its own key.
            let app = try await Self.register(client, "signer@example.org", adminKey: key)
            let me = try await Self.send(client, .get, "/v1/clients/me", headers: Self.signed("GET", "/v1/clients/me", client: app.id, key: app.key))
            #expect(me.status == 200 && me.object["id"] as? Int == Int(app.id), "\(me)")
        }
    }

    @Test func aTamperedSignedRequestIs401() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let admin = try await Self.adminId(client, harness.adminKey)
            let key = harness.adminKey
            let body = #"{"size":1,"homepage":"http://a.test/"}"#
            let before = try await harness.snapshot()
            // Body changed after signing.
            let other = #"{"size":9,"homepage":"http://a.test/"}"#
            let bodyChanged = try await Self.send(client, .post, "/v1/batches", body: other,
                                                  headers: Self.signed("POST", "/v1/batches", body: body, client: admin, key: key))
            #expect(bodyChanged.status == 401 && bodyChanged.error == "unauthenticated", "\(bodyChanged)")
            // Body dropped.
            #expect(try await Self.send(client, .post, "/v1/batches", headers: Self.signed("POST", "/v1/batches", body: body, client: admin, key: key)).status == 401)
            // Path changed, query added, method changed.
            #expect(try await Self.send(client, .get, "/v1/batches", headers: Self.signed("GET", "/v1/pool", client: admin, key: key)).status == 401)
            #expect(try await Self.send(client, .get, "/v1/pool?x=1", headers: Self.signed("GET", "/v1/pool", client: admin, key: key)).status == 401)
            #expect(try await Self.send(client, .get, "/v1/events?limit=6", headers: Self.signed("GET", "/v1/events?limit=5", client: admin, key: key)).status == 401)
            #expect(try await Self.send(client, .post, "/v1/batches", body: body, headers: Self.signed("PUT", "/v1/batches", body: body, client: admin, key: key)).status == 401)
            // Timestamp or nonce header changed after signing.
            var headers = Self.signed("GET", "/v1/pool", client: admin, key: key)
            headers[Self.timestampHeader] = String(Int64(headers[Self.timestampHeader]!)! + 1)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: headers).status == 401)
            headers = Self.signed("GET", "/v1/pool", client: admin, key: key, nonce: "nonce-aaaa")
            headers[Self.nonceHeader] = "nonce-aaab"
            #expect(try await Self.send(client, .get, "/v1/pool", headers: headers).status == 401)
            // Signed with another client's key, or a key nobody holds, or for a client that does not exist.
            let app = try await Self.register(client, "tamper@example.org", adminKey: key)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: Self.signed("GET", "/v1/pool", client: admin, key: app.key)).status == 401)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: Self.signed("GET", "/v1/pool", client: admin, key: "vmc_" + String(repeating: "B", count: 43))).status == 401)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: Self.signed("GET", "/v1/pool", client: 999, key: key)).status == 401)
            // A malformed set of headers is a 401 too.
            var partial = Self.signed("GET", "/v1/pool", client: admin, key: key)
            partial[Self.nonceHeader] = nil
            #expect(try await Self.send(client, .get, "/v1/pool", headers: partial).status == 401)
            // Nothing but the client registered above changed.
            let after = try await harness.snapshot()
            #expect(after.filter { $0.hasPrefix("batch:") } == before.filter { $0.hasPrefix("batch:") }, "no refused request made a batch")
        }
    }

    @Test func aReplayedSignatureIs401() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let admin = try await Self.adminId(client, harness.adminKey)
            let body = #"{"size":1,"homepage":"http://a.test/"}"#
            let headers = Self.signed("POST", "/v1/batches", body: body, client: admin, key: harness.adminKey)
            #expect(try await Self.send(client, .post, "/v1/batches", body: body, headers: headers).status == 201)
            let replay = try await Self.send(client, .post, "/v1/batches", body: body, headers: headers)
            #expect(replay.status == 401 && replay.error == "unauthenticated", "\(replay)")
            #expect((replay.object["message"] as? String)?.contains("already used") == true, "\(replay)")
            let batches = try await Self.send(client, .get, "/v1/batches", headers: Self.bearer(harness.adminKey))
            #expect(batches.array.count == 1, "the replay made no second batch")
            // Upper-case hex of the same signature is the same signature: still a replay.
            var upper = headers
            upper[Self.signatureHeader] = headers[Self.signatureHeader]!.uppercased()
            #expect(try await Self.send(client, .post, "/v1/batches", body: body, headers: upper).status == 401)
            // A new nonce makes a new signature: accepted.
            let again = Self.signed("POST", "/v1/batches", body: body, client: admin, key: harness.adminKey)
            #expect(try await Self.send(client, .post, "/v1/batches", body: body, headers: again).status == 201)
        }
    }

    /// The same 32 signature bytes written differently ("+a" parses as the byte 0x0a, like "0a")
    /// must still be the same signature, else a captured request can be replayed.
    @Test func aReplayWithTheSignatureReencodedIs401() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let admin = try await Self.adminId(client, harness.adminKey)
            // A signature with a byte below 0x10 (one in 16 bytes is).
            var headers: HTTPFields = [:]
            var offset: Int?
            repeat {
                headers = Self.signed("GET", "/v1/pool", client: admin, key: harness.adminKey)
                let hex = Array(headers[Self.signatureHeader]!)
                offset = stride(from: 0, to: 64, by: 2).first { hex[$0] == "0" }
            } while offset == nil
            #expect(try await Self.send(client, .get, "/v1/pool", headers: headers).status == 200)
            var characters = Array(headers[Self.signatureHeader]!)
            characters[offset!] = "+"
            let hex = String(characters)
            var reencoded = headers
            reencoded[Self.signatureHeader] = hex
            let replay = try await Self.send(client, .get, "/v1/pool", headers: reencoded)
            #expect(replay.status == 401, "a replay with \(hex) (same bytes as \(headers[Self.signatureHeader]!)) was accepted: \(replay)")
        }
    }

    @Test func aStaleTimestampIs401() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let admin = try await Self.adminId(client, harness.adminKey)
            let now = Int64(Date().timeIntervalSince1970)
            for timestamp in [now - 1000, now + 1000, now - 310, 0] {
                let answer = try await Self.send(client, .get, "/v1/pool", headers: Self.signed("GET", "/v1/pool", client: admin, key: harness.adminKey, timestamp: timestamp))
                #expect(answer.status == 401 && (answer.object["message"] as? String)?.contains("timestamp") == true, "\(timestamp - now): \(answer)")
            }
            // Within the allowed skew, either way.
            for timestamp in [now - 200, now + 200] {
                #expect(try await Self.send(client, .get, "/v1/pool", headers: Self.signed("GET", "/v1/pool", client: admin, key: harness.adminKey, timestamp: timestamp)).status == 200)
            }
        }
    }

    // MARK: - roles and ownership

    @Test func anApplicationSeesOnlyItsOwnBatchesAndHandles() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let a = try await Self.register(client, "a@example.org", adminKey: harness.adminKey)
            let b = try await Self.register(client, "b@example.org", adminKey: harness.adminKey)
            let (ka, kb) = (Self.bearer(a.key), Self.bearer(b.key))

            // Admin-only routes.
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/pool"), (.put, "/v1/pool"), (.get, "/v1/vms"), (.get, "/v1/vms/1"),
                                  (.get, "/v1/vms/1/agent"), (.post, "/v1/vms/1/navigate"), (.get, "/v1/events"), (.get, "/v1/images"),
                                  (.get, "/v1/reconciler"), (.post, "/v1/vms"), (.post, "/v1/vms/x/stop"), (.get, "/v1/vms/1/screenshot.png"),
                                  (.get, "/v1/vms/1/thumbnail.png"), (.get, "/v1/clients"), (.post, "/v1/clients"), (.delete, "/v1/clients/\(b.id)"),
                                  (.get, "/v1/jobs/vms"), (.post, "/set-pool-size/0/0/0")] {
                let answer = try await Self.send(client, method, uri, body: #"{"min":0,"max":0,"lingerMs":0}"#, headers: ka)
                #expect(answer.status == 403 && answer.error == "forbidden", "\(method) \(uri): \(answer)")
            }
            #expect(try await Self.send(client, .post, "/set-pool-size/0/0/0?key=\(a.key)").status == 403)

            // A makes a batch and locks in it (no VM: the handle waits), by /v1 and by the seed's endpoints.
            let created = try await Self.send(client, .post, "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/"}"#, headers: ka)
            #expect(created.status == 201, "\(created)")
            let batch = try #require(created.object["id"] as? Int)
            #expect(try await Self.send(client, .get, "/v1/batches/\(batch)", headers: ka).status == 200)
            #expect(try await Self.send(client, .get, "/v1/batches", headers: ka).array.compactMap { $0["id"] as? Int } == [batch])
            let locked = try await Self.send(client, .post, "/v1/batches/\(batch)/locks", headers: ka)
            #expect(locked.status == 201 && locked.object["state"] as? String == "waiting", "\(locked)")
            let handle = try #require(locked.object["id"] as? Int)
            let legacyLock = try await Self.send(client, .post, "/lock/\(batch)?key=\(a.key)")
            #expect(legacyLock.status == 200, "\(legacyLock)")
            let handle2 = try #require(Int(legacyLock.text))
            #expect(try await Self.send(client, .get, "/v1/handles/\(handle)", headers: ka).status == 200)
            #expect(try await Self.send(client, .get, "/handle-status/\(handle)?key=\(a.key)").text == #"{"assigned":false}"#)
            #expect(Set(try await Self.send(client, .get, "/v1/handles", headers: ka).array.compactMap { $0["id"] as? Int }) == [handle, handle2])
            // A batch by the seed's endpoint belongs to A too.
            let legacyBatch = try await Self.send(client, .post, "/prepare-batch/1/http%3A%2F%2Fc.test%2F?key=\(a.key)")
            let batch2 = try #require(Int(legacyBatch.text), "\(legacyBatch)")

            // B: another client's ids are 404, as if they did not exist.
            let hidden: [(HTTPRequest.Method, String, HTTPFields)] = [
                (.get, "/v1/batches/\(batch)", kb), (.post, "/v1/batches/\(batch)/locks", kb), (.post, "/v1/batches/\(batch)/cancel", kb),
                (.get, "/v1/handles/\(handle)", kb), (.post, "/v1/handles/\(handle)/release", kb), (.get, "/v1/handles/\(handle)/pages", kb),
                (.post, "/lock/\(batch)?key=\(b.key)", [:]), (.post, "/release/\(handle)?key=\(b.key)", [:]),
                (.get, "/handle-status/\(handle)?key=\(b.key)", [:]), (.post, "/cancel-batch/\(batch)?key=\(b.key)", [:]),
                (.post, "/lock/\(batch)", kb), (.post, "/release/\(handle2)", kb), (.get, "/handle-status/\(handle2)", kb),
                (.get, "/v1/batches/\(batch2)", kb),
            ]
            for (method, uri, headers) in hidden {
                let answer = try await Self.send(client, method, uri, headers: headers)
                #expect(answer.status == 404, "B: \(method) \(uri): \(answer)")
                // The same 404 as an id that does not exist: nothing tells B that it does.
                #expect(answer.error == "not_found", "B: \(method) \(uri): \(answer)")
            }
            #expect(try await Self.send(client, .get, "/v1/batches", headers: kb).array.isEmpty)
            #expect(try await Self.send(client, .get, "/v1/handles", headers: kb).array.isEmpty)
            // B's attempts changed nothing: A's handles still wait, A's batch is still open.
            let still = try await Self.send(client, .get, "/v1/batches/\(batch)", headers: ka)
            #expect(still.object["state"] as? String == "open", "\(still)")
            #expect((still.object["handles"] as? [[String: Any]])?.compactMap { $0["state"] as? String } == ["waiting", "waiting"], "\(still)")

            // The admin sees everything, and may act on A's handle.
            let admin = Self.bearer(harness.adminKey)
            #expect(Set(try await Self.send(client, .get, "/v1/batches", headers: admin).array.compactMap { $0["id"] as? Int }) == [batch, batch2])
            #expect(Set(try await Self.send(client, .get, "/v1/handles", headers: admin).array.compactMap { $0["id"] as? Int }) == [handle, handle2])
            #expect(try await Self.send(client, .get, "/v1/handles/\(handle)", headers: admin).status == 200)
            // A releases its own.
            #expect(try await Self.send(client, .post, "/v1/handles/\(handle)/release", headers: ka).status == 200)
            #expect(try await Self.send(client, .post, "/release/\(handle2)?key=\(a.key)").status == 200)
        }
    }

    @Test func anApplicationSeesOnlyItsOwnPages() async throws {
        let harness = try await APIHarness()
        let store = harness.pool.store
        try await harness.test(authenticated: false) { client in
            let a = try await Self.register(client, "pages-a@example.org", adminKey: harness.adminKey)
            let b = try await Self.register(client, "pages-b@example.org", adminKey: harness.adminKey)
            let created = try await Self.send(client, .post, "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/"}"#, headers: Self.bearer(a.key))
            let batch = Int64(try #require(created.object["id"] as? Int))
            // A VM for A's batch, as the pool would bring one: idle, granted, configured.
            let vm = try await makeIdleVM(store)
            _ = try await store.grantIdleVMs()
            #expect(try await store.configured(vm: vm, homepage: "http://a.test/").outcome == .prepared)
            let handle = try await store.lock(batchId: batch)
            let session = try #require(handle.vmSession)
            let page = try await store.insertPage(PageRecord(
                id: nil, vmId: vm, vmSession: session, agentPage: 1, url: "http://a.test/", title: "A", at: Date(), guestTime: 0,
                screenshotHash: nil, screenshotBytes: 0, mhtmlHash: nil, mhtmlBytes: 0))
            let pages = try await Self.send(client, .get, "/v1/handles/\(handle.id!)/pages", headers: Self.bearer(a.key))
            #expect(pages.array.compactMap { $0["id"] as? Int } == [Int(page.id!)], "\(pages)")
            #expect(try await Self.send(client, .get, "/v1/handles/\(handle.id!)/pages", headers: Self.bearer(b.key)).status == 404)
            for capture in ["screenshot.png", "page.mhtml"] {
                // A gets past the owner check (this page has no capture files); B does not.
                let own = try await Self.send(client, .get, "/v1/pages/\(page.id!)/\(capture)", headers: Self.bearer(a.key))
                #expect((own.object["message"] as? String)?.contains("no such capture") == true, "\(own)")
                let other = try await Self.send(client, .get, "/v1/pages/\(page.id!)/\(capture)", headers: Self.bearer(b.key))
                #expect(other.status == 404 && (other.object["message"] as? String) == "no page \(page.id!)", "\(other)")
            }
        }
    }

    @Test func anApplicationSeesOnlyItsOwnJobs() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let a = try await Self.register(client, "jobs-a@example.org", adminKey: harness.adminKey)
            let b = try await Self.register(client, "jobs-b@example.org", adminKey: harness.adminKey)
            let made = try await Self.send(client, .post, "/v1/jobs", body: #"{"url":"http://a.test/"}"#, headers: Self.bearer(a.key))
            #expect(made.status == 201, "\(made)")
            let job = try #require(made.object["id"] as? Int)
            #expect(made.object["client"] as? Int == Int(a.id))
            #expect(try await Self.send(client, .get, "/v1/jobs/\(job)", headers: Self.bearer(a.key)).status == 200)
            #expect(try await Self.send(client, .get, "/v1/jobs", headers: Self.bearer(a.key)).array.compactMap { $0["id"] as? Int } == [job])
            let other = try await Self.send(client, .get, "/v1/jobs/\(job)", headers: Self.bearer(b.key))
            #expect(other.status == 404 && other.error == "not_found", "\(other)")
            #expect(try await Self.send(client, .get, "/v1/jobs", headers: Self.bearer(b.key)).array.isEmpty)
            #expect(try await Self.send(client, .get, "/v1/jobs?client=\(a.id)", headers: Self.bearer(b.key)).array.isEmpty, "?client= is for admins")
            #expect(try await Self.send(client, .get, "/v1/jobs?client=\(a.id)", headers: Self.bearer(harness.adminKey)).array.count == 1)
        }
    }

    @Test func aViewerBelongsToTheClientThatMadeIt() async throws {
        let harness = try await APIHarness()
        try FileManager.default.createDirectory(atPath: harness.directory + "/images", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: harness.directory + "/images/viewer.qcow2", contents: Data())
        try await harness.test(authenticated: false) { client in
            let a = try await Self.register(client, "viewer-a@example.org", adminKey: harness.adminKey)
            let b = try await Self.register(client, "viewer-b@example.org", adminKey: harness.adminKey)
            let body = #"{"image":"viewer.qcow2","wait":0}"#
            let made = try await Self.send(client, .put, "/v1/viewers/p1/codedx", body: body, headers: Self.bearer(a.key))
            #expect([200, 202].contains(made.status) && made.object["created"] as? Bool == true, "\(made)")
            let accessKey = try #require(made.object["access_key"] as? String)
            var withKey = Self.bearer(a.key)
            withKey[HTTPField.Name("X-Viewer-Key")!] = accessKey
            #expect(try await Self.send(client, .get, "/v1/viewers/p1/codedx", headers: withKey).status == 200)
            // B, even with the viewer's access key: not its viewer.
            let again = try await Self.send(client, .put, "/v1/viewers/p1/codedx", body: body, headers: Self.bearer(b.key))
            #expect(again.status == 403 && again.error == "owned_by_another_client", "\(again)")
            #expect(again.object["access_key"] == nil, "the access key does not leak to another client")
            var bWithKey = Self.bearer(b.key)
            bWithKey[HTTPField.Name("X-Viewer-Key")!] = accessKey
            #expect(try await Self.send(client, .get, "/v1/viewers/p1/codedx", headers: bWithKey).status == 404)
            #expect(try await Self.send(client, .delete, "/v1/viewers/p1/codedx", headers: bWithKey).status == 404)
            #expect(try await Self.send(client, .get, "/v1/viewers/p1/codedx", headers: withKey).object["status"] as? String != "destroyed")
            // A's second PUT finds the same viewer.
            let same = try await Self.send(client, .put, "/v1/viewers/p1/codedx", body: body, headers: Self.bearer(a.key))
            #expect(same.object["created"] as? Bool == false && same.object["access_key"] as? String == accessKey, "\(same)")
        }
    }

    // MARK: - keys: rotation, revocation, registration

    @Test func rotatingAKeyEndsTheOldOne() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let a = try await Self.register(client, "rot-a@example.org", adminKey: harness.adminKey)
            let b = try await Self.register(client, "rot-b@example.org", adminKey: harness.adminKey)
            // Self-service.
            let rotated = try await Self.send(client, .post, "/v1/clients/\(a.id)/key", headers: Self.bearer(a.key))
            #expect(rotated.status == 200, "\(rotated)")
            let newKey = try #require(rotated.object["key"] as? String)
            #expect(newKey != a.key && ClientKey.looksValid(newKey))
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(a.key)).status == 401)
            #expect(try await Self.send(client, .post, "/lock/1?key=\(a.key)").status == 401)
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.signed("GET", "/v1/clients/me", client: a.id, key: a.key)).status == 401,
                    "the old key no longer signs either")
            let me = try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(newKey))
            #expect(me.status == 200 && me.object["key"] == nil, "the key is shown only when made: \(me)")
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.signed("GET", "/v1/clients/me", client: a.id, key: newKey)).status == 200)
            // Not another client's.
            #expect(try await Self.send(client, .post, "/v1/clients/\(b.id)/key", headers: Self.bearer(newKey)).status == 404)
            #expect(try await Self.send(client, .get, "/v1/clients/\(b.id)", headers: Self.bearer(newKey)).status == 404)
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(b.key)).status == 200, "B's key is untouched")
            // The admin may rotate anyone's.
            let byAdmin = try await Self.send(client, .post, "/v1/clients/\(b.id)/key", headers: Self.bearer(harness.adminKey))
            let bNew = try #require(byAdmin.object["key"] as? String, "\(byAdmin)")
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(b.key)).status == 401)
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(bNew)).status == 200)
        }
    }

    @Test func revokingAKeyEndsIt() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let admin = Self.bearer(harness.adminKey)
            let a = try await Self.register(client, "rev-a@example.org", adminKey: harness.adminKey)
            let other = try await Self.register(client, "rev-admin@example.org", role: "admin", adminKey: harness.adminKey)
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(a.key)).status == 200)
            // Not by an application, not by an admin on itself.
            #expect(try await Self.send(client, .delete, "/v1/clients/\(a.id)", headers: Self.bearer(a.key)).status == 403)
            let me = try await Self.adminId(client, harness.adminKey)
            #expect(try await Self.send(client, .delete, "/v1/clients/\(me)", headers: admin).status == 409)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: admin).status == 200, "the admin is still there")

            let revoked = try await Self.send(client, .delete, "/v1/clients/\(a.id)", headers: admin)
            #expect(revoked.status == 200, "\(revoked)")
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(a.key)).status == 401)
            #expect(try await Self.send(client, .post, "/lock/1?key=\(a.key)").status == 401)
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.signed("GET", "/v1/clients/me", client: a.id, key: a.key)).status == 401)
            #expect(try await Self.send(client, .post, "/v1/clients/\(a.id)/key", headers: admin).status == 404, "a revoked client gets no new key")
            #expect(try await Self.send(client, .get, "/v1/clients/\(a.id)", headers: admin).status == 404)
            #expect(try await Self.send(client, .delete, "/v1/clients/\(a.id)", headers: admin).status == 404)
            #expect(!(try await Self.send(client, .get, "/v1/clients", headers: admin).array.contains { $0["id"] as? Int == Int(a.id) }))
            // Another admin may revoke the first one.
            #expect(try await Self.send(client, .delete, "/v1/clients/\(me)", headers: Self.bearer(other.key)).status == 200)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: admin).status == 401)
        }
    }

    @Test func registrationIsValidated() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let admin = Self.bearer(harness.adminKey)
            let made = try await Self.send(client, .post, "/v1/clients", body: #"{"email":" app@example.org ","groups":["b","a-1","b","A_2"]}"#, headers: admin)
            #expect(made.status == 201, "\(made)")
            #expect(made.object["email"] as? String == "app@example.org")
            #expect(made.object["role"] as? String == "application", "the default role")
            #expect(made.object["groups"] as? [String] == ["A_2", "a-1", "b"])
            let key = try #require(made.object["key"] as? String)
            #expect(ClientKey.looksValid(key) && key != harness.adminKey)
            #expect((made.object["stats"] as? [String: Any])?["requests"] as? Int == 0)

            for body in [#"{"email":"no-at-sign.example.org"}"#, #"{"email":"@example.org"}"#, #"{"email":"a@b"}"#, #"{"email":"a@.example.org"}"#,
                         #"{"email":"a@example.org."}"#, #"{"email":"a b@example.org"}"#, #"{"email":"a@b@example.org"}"#, #"{"email":""}"#,
                         #"{"email":"a@example.org\u0000x"}"#, "{\"email\":\"\(String(repeating: "a", count: 250))@example.org\"}",
                         #"{"email":7}"#, #"{}"#, "not json", #"{"email":"r@example.org","role":"root"}"#,
                         #"{"email":"g@example.org","groups":["a b"]}"#, #"{"email":"g@example.org","groups":[""]}"#,
                         #"{"email":"g@example.org","groups":["a/b"]}"#, "{\"email\":\"g@example.org\",\"groups\":[\"\(String(repeating: "g", count: 65))\"]}",
                         "{\"email\":\"g@example.org\",\"groups\":\(Self.json((0..<65).map { "g\($0)" }))}"] {
                let answer = try await Self.send(client, .post, "/v1/clients", body: body, headers: admin)
                #expect(answer.status == 400, "\(body): \(answer)")
            }
            // Duplicates, whatever the case.
            for email in ["app@example.org", "APP@example.org"] {
                let answer = try await Self.send(client, .post, "/v1/clients", body: Self.json(["email": email]), headers: admin)
                #expect(answer.status == 409 && answer.error == "email_taken", "\(email): \(answer)")
            }
            // An application registers nobody.
            let byApp = try await Self.send(client, .post, "/v1/clients", body: #"{"email":"new@example.org"}"#, headers: Self.bearer(key))
            #expect(byApp.status == 403, "\(byApp)")
            // None of the refused ones was stored.
            let listed = try await Self.send(client, .get, "/v1/clients", headers: admin).array
            #expect(listed.compactMap { $0["email"] as? String }.sorted() == ["admin@localhost", "app@example.org"])
            #expect(listed.allSatisfy { $0["key"] == nil }, "keys are never listed")
            // An admin client may register others.
            let second = try await Self.register(client, "ops@example.org", role: "admin", adminKey: harness.adminKey)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: Self.bearer(second.key)).status == 200)
            _ = try await Self.register(client, "third@example.org", adminKey: second.key)
        }
    }

    @Test func onlyDerivationsOfKeysAreStored() async throws {
        let harness = try await APIHarness()
        let store = harness.pool.store
        try await harness.test(authenticated: false) { client in
            let a = try await Self.register(client, "stored@example.org", adminKey: harness.adminKey)
            let rows = try store.pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM client") }
            let dump = rows.map { "\($0)" }.joined(separator: "\n")
            for key in [a.key, harness.adminKey] {
                #expect(!dump.contains(key) && !dump.contains(String(key.dropFirst(4))), "a key is stored in clear")
                let row = try #require(rows.first { ($0["keyHash"] as String?) == ClientKey.hash(key) })
                #expect((row["signingKey"] as Data?) == ClientKey.signingKey(key))
            }
        }
    }

    // MARK: - statistics

    @Test func statsCountRequestsBatchesAndLocks() async throws {
        let harness = try await APIHarness()
        let store = harness.pool.store
        try await harness.test(authenticated: false) { client in
            let admin = Self.bearer(harness.adminKey)
            let a = try await Self.register(client, "stats@example.org", adminKey: harness.adminKey)
            let ka = Self.bearer(a.key)
            // Five authenticated requests of A, one of them refused after authentication.
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: ka).status == 200)
            let created = try await Self.send(client, .post, "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/"}"#, headers: ka)
            let batch = try #require(created.object["id"] as? Int)
            #expect(try await Self.send(client, .post, "/v1/batches/\(batch)/locks", headers: ka).status == 201)
            #expect(try await Self.send(client, .get, "/v1/pool", headers: ka).status == 403)
            #expect(try await Self.send(client, .post, "/lock/\(batch)?key=\(a.key)").status == 200)
            // Requests that were not A's: no key, a wrong key.
            #expect(try await Self.send(client, .get, "/v1/clients/me").status == 401)
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: Self.bearer(a.key + "x")).status == 401)

            // Counted in memory until the flush (every second in the server; by hand here).
            func stats() async throws -> [String: Any] {
                let answer = try await Self.send(client, .get, "/v1/clients/\(a.id)", headers: admin)
                return try #require(answer.object["stats"] as? [String: Any], "\(answer)")
            }
            #expect(try await stats()["requests"] as? Int == 0)
            try await harness.authenticator.counter.flush(to: store)
            var now = try await stats()
            #expect(now["requests"] as? Int == 5, "\(now)")
            #expect(now["batches"] as? Int == 1, "\(now)")
            // A lock counts once it has a VM (both of A's handles wait: there is none yet).
            #expect(now["locks"] as? Int == 0, "\(now)")
            let vm = try await makeIdleVM(store)
            _ = try await store.grantIdleVMs()
            #expect(try await store.configured(vm: vm, homepage: "http://a.test/").outcome == .prepared)
            now = try await stats()
            #expect(now["locks"] as? Int == 1, "\(now)")
            #expect(now["jobsDone"] as? Int == 0 && now["jobsFailed"] as? Int == 0)

            // The admin's own requests are the admin's; a second flush adds, never double counts.
            #expect(try await Self.send(client, .get, "/v1/clients/me", headers: ka).status == 200)
            try await harness.authenticator.counter.flush(to: store)
            try await harness.authenticator.counter.flush(to: store)
            let listed = try await Self.send(client, .get, "/v1/clients", headers: admin).array
            let row = try #require(listed.first { $0["id"] as? Int == Int(a.id) })
            #expect((row["stats"] as? [String: Any])?["requests"] as? Int == 6, "\(row)")
            #expect(row["lastSeenAt"] is String, "\(row)")
            let adminRow = try #require(listed.first { $0["email"] as? String == "admin@localhost" })
            #expect(((adminRow["stats"] as? [String: Any])?["requests"] as? Int ?? 0) >= 4, "\(adminRow)")
        }
    }

    // MARK: - the admin key at first start

    @Test func theAdminKeyIsMadeOnceWithMode0600() async throws {
        let (store, dir) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/admin.key"
        let key = try #require(try await AdminKey.ensure(store: store, path: path))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == key.text + "\n")
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        let admin = try #require(try await store.client(keyHash: key.hash))
        #expect(admin.role == .admin && !admin.revoked)
        // A second start: no new admin, the file untouched.
        #expect(try await AdminKey.ensure(store: store, path: path) == nil)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == key.text + "\n")
        #expect(try await store.clients().count == 1)
    }

    // MARK: - trusted networks

    static func peer(_ address: String) -> SocketAddress { try! SocketAddress(ipAddress: address, port: 40000) }

    @Test func trustedNetworksMatchIPv4ByPrefix() throws {
        let networks = try TrustedNetworks(["10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12", "100.64.0.0/9", "203.0.113.7"])
        for inside in ["10.0.0.1", "10.255.255.255", "192.168.1.0", "192.168.1.255", "172.16.0.1", "172.31.255.254", "100.127.0.1", "203.0.113.7"] {
            #expect(networks.contains(Self.peer(inside)), "\(inside)")
        }
        for outside in ["11.0.0.1", "9.255.255.255", "192.168.2.1", "192.168.0.255", "172.32.0.1", "172.15.255.255", "100.128.0.1", "203.0.113.8", "127.0.0.1"] {
            #expect(!networks.contains(Self.peer(outside)), "\(outside)")
        }
        #expect(try TrustedNetworks(["0.0.0.0/0"]).contains(Self.peer("198.51.100.1")))
        #expect(!networks.contains(nil), "no peer address: not trusted")
        #expect(!TrustedNetworks.loopback.contains(nil))
        // The default: loopback only.
        #expect(TrustedNetworks.loopback.contains(Self.peer("127.0.0.1")) && TrustedNetworks.loopback.contains(Self.peer("127.8.9.10")))
        #expect(!TrustedNetworks.loopback.contains(Self.peer("128.0.0.1")) && !TrustedNetworks.loopback.contains(Self.peer("10.0.0.1")))
        #expect(ServeConfig().trustedNetworks == TrustedNetworks.loopback)
    }

    @Test func trustedNetworksMatchIPv6ByPrefix() throws {
        let networks = try TrustedNetworks(["fd00::/8", "2001:db8:8000::/33", "fe80::1"])
        for inside in ["fd00::1", "fdff:ffff::1", "2001:db8:8000::1", "2001:db8:ffff:ffff::1", "fe80::1"] {
            #expect(networks.contains(Self.peer(inside)), "\(inside)")
        }
        for outside in ["fc00::1", "fe00::1", "2001:db8::1", "2001:db8:7fff::1", "fe80::2", "::1"] {
            #expect(!networks.contains(Self.peer(outside)), "\(outside)")
        }
        #expect(TrustedNetworks.loopback.contains(Self.peer("::1")))
        #expect(!TrustedNetworks.loopback.contains(Self.peer("::2")))
        // An IPv6 network never holds an IPv4 peer, nor the reverse.
        #expect(!(try TrustedNetworks(["::/0"])).contains(Self.peer("10.0.0.1")))
        #expect(!(try TrustedNetworks(["0.0.0.0/0"])).contains(Self.peer("fd00::1")))
    }

    @Test func ipv4MappedPeersAreMatchedAsIPv4() throws {
        // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
        #expect(TrustedNetworks.loopback.contains(Self.peer("::ffff:127.0.0.1")))
        #expect(!TrustedNetworks.loopback.contains(Self.peer("::ffff:10.0.0.1")))
        let networks = try TrustedNetworks(["10.0.0.0/8"])
        #expect(networks.contains(Self.peer("::ffff:10.2.3.4")))
        #expect(!networks.contains(Self.peer("::ffff:11.2.3.4")))
        // Only that exact prefix means "mapped": these are other IPv6 addresses.
        #expect(!networks.contains(Self.peer("::10.2.3.4")))
        #expect(!networks.contains(Self.peer("::fffe:a02:304")))
    }

    @Test func badTrustedNetworksAreRefused() throws {
        for entry in ["", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+", "10.0.0.0/abc", "10.0.0.0/8/8", "10.0.0/8",
                      "10.0.0.256/8", "localhost/8", "example.org", " 10.0.0.0/8", "10.0.0.0/8 ", "::/129", "1.2.3.4:80", "::ffff:1.2.3.4/129"] {
            #expect(throws: TrustedNetworks.Invalid.self, "'\(entry)'") { _ = try TrustedNetworks([entry]) }
        }
        // One bad entry spoils the list; the message names it.
        #expect { _ = try TrustedNetworks(["10.0.0.0/8", "10.0.0.0/99"]) } throws: { "\($0)".contains("10.0.0.0/99") }
        // The flag and the config key go through the same parser.
        #expect(try ServeCommand.parse(["--trusted-network", "10.0.0.0/8", "--trusted-network", "fd00::/8"]).resolvedConfig().trustedNetworks
                == TrustedNetworks(["10.0.0.0/8", "fd00::/8"]))
        #expect { try ServeCommand.parse(["--trusted-network", "10.0.0.0/40"]).resolvedConfig() } throws: { "\($0)".contains("10.0.0.0/40") }
        let dir = try makeTemporaryDirectory("trusted")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"trustedNetworks": ["192.168.0.0/16"]}"#.write(toFile: dir + "/c.json", atomically: true, encoding: .utf8)
        #expect(try ServeCommand.parse(["--config", dir + "/c.json"]).resolvedConfig().trustedNetworks == TrustedNetworks(["192.168.0.0/16"]))
        try #"{"trustedNetworks": ["192.168.0.0/16", "nope"]}"#.write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        #expect { try ServeCommand.parse(["--config", dir + "/bad.json"]).resolvedConfig() } throws: { "\($0)".contains("nope") }
    }

    // MARK: - the signature headers

    static func parse(_ headers: [String: String]) throws(AuthFailure) -> RequestSignature? {
        try RequestSignature.parse { name in headers.first { $0.key.lowercased() == name.lowercased() }?.value }
    }

    static let goodSignature = String(repeating: "ab", count: 32)
    static let good = ["X-Vmcloud-Client": "7", "X-Vmcloud-Timestamp": "1700000000", "X-Vmcloud-Nonce": "nonce-1234", "X-Vmcloud-Signature": goodSignature]

    @Test func signatureHeadersParse() throws {
        #expect(try Self.parse([:]) == nil, "no signature headers: not a signed request")
        #expect(try Self.parse(["Authorization": "Bearer x"]) == nil)
        let parsed = try #require(try Self.parse(Self.good))
        #expect(parsed == RequestSignature(clientId: 7, timestamp: 1_700_000_000, nonce: "nonce-1234", signature: Self.goodSignature))
        var upper = Self.good
        upper["X-Vmcloud-Signature"] = Self.goodSignature.uppercased()
        #expect(try Self.parse(upper)?.signature == Self.goodSignature, "hex is kept lower-case")
        for nonce in ["12345678", String(repeating: "n", count: 64), "!~abcdef"] {
            var headers = Self.good
            headers["X-Vmcloud-Nonce"] = nonce
            #expect(try Self.parse(headers)?.nonce == nonce)
        }
        var negative = Self.good
        negative["X-Vmcloud-Timestamp"] = "-5"
        #expect(try Self.parse(negative)?.timestamp == -5, "parses; the freshness check refuses it")
    }

    @Test func missingOrMalformedSignatureHeadersAreRefused() throws {
        // Any one of the four missing.
        for name in Self.good.keys {
            var headers = Self.good
            headers[name] = nil
            #expect("\(name) missing") { _ = try Self.parse(headers) } throws: { error in
                guard case .malformed(let why)? = error as? AuthFailure else { return false }
                return why.contains("needs all of")
            }
        }
        let bad: [(String, String)] = [
            ("X-Vmcloud-Client", ""), ("X-Vmcloud-Client", "abc"), ("X-Vmcloud-Client", "0"), ("X-Vmcloud-Client", "-3"), ("X-Vmcloud-Client", "1.0"),
            ("X-Vmcloud-Client", "99999999999999999999"),
            ("X-Vmcloud-Timestamp", ""), ("X-Vmcloud-Timestamp", "now"), ("X-Vmcloud-Timestamp", "1700000000.5"), ("X-Vmcloud-Timestamp", "1e9"),
            ("X-Vmcloud-Nonce", ""), ("X-Vmcloud-Nonce", "1234567"), ("X-Vmcloud-Nonce", String(repeating: "n", count: 65)),
            ("X-Vmcloud-Nonce", "nonce with spaces"), ("X-Vmcloud-Nonce", "nonce-é-1234"), ("X-Vmcloud-Nonce", "nonce\t1234"),
            ("X-Vmcloud-Signature", ""), ("X-Vmcloud-Signature", String(repeating: "a", count: 63)), ("X-Vmcloud-Signature", String(repeating: "a", count: 65)),
            ("X-Vmcloud-Signature", String(repeating: "zz", count: 32)), ("X-Vmcloud-Signature", String(repeating: "ab", count: 31) + "a "),
            ("X-Vmcloud-Signature", String(repeating: "ab", count: 64)),
        ]
        for (name, value) in bad {
            var headers = Self.good
            headers[name] = value
            #expect("\(name): '\(value)'") { _ = try Self.parse(headers) } throws: { error in
                guard case .malformed? = error as? AuthFailure else { return false }
                return true
            }
        }
    }

    @Test func freshnessAllowsTheSkewEitherWay() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        func at(_ offset: Int64) -> RequestSignature {
            RequestSignature(clientId: 1, timestamp: 1_700_000_000 + offset, nonce: "nonce-1234", signature: Self.goodSignature)
        }
        #expect(at(0).isFresh(now: now) && at(300).isFresh(now: now) && at(-300).isFresh(now: now))
        #expect(!at(301).isFresh(now: now) && !at(-301).isFresh(now: now) && !at(-1000).isFresh(now: now))
    }
}
