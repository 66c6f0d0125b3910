import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
@testable import VMCloud
@testable import VMCloudCore

/// Client keys against the real binary over real sockets: the six vmcloud endpoints stay open to
/// a control app on a trusted network (loopback by default) and nothing else does; `?key=`;
/// the admin key made once at first start; request counts flushed by the server itself.
@Suite(.serialized) struct LegacyAuthTests {
    static func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

    /// A request with exactly these headers (no key of the client's own).
    static func raw(_ api: HTTPTestClient, _ method: String, _ path: String, body: Data? = nil,
                    headers: [String: String] = [:]) async throws -> (Int, String) {
        var request = api.with(key: nil).urlRequest(method, path)
        request.timeoutInterval = 30
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, text(data))
    }

    static func occurrences(of needle: String, in haystack: String) -> Int {
        haystack.components(separatedBy: needle).count - 1
    }

    @Test func loopbackIsTrustedForTheSixEndpointsOnly() async throws {
        try await withAppliance("legacy-auth") { run in
            let (appliance, api) = (run.appliance, run.api)
            let anonymous = api.with(key: nil)
            let adminKey = try #require(appliance.adminKey)
            #expect(ClientKey.looksValid(adminKey), "admin.key holds a key: \(adminKey.prefix(8))...")

            // The six endpoints without a key, from 127.0.0.1.
            #expect(try await anonymous.post("/set-pool-size/0/0/0") == (200, Data()))
            let (prepared, batchData) = try await anonymous.post("/prepare-batch/1/http%3A%2F%2Fexample.test%2F")
            #expect(prepared == 200)
            let batch = try #require(Int(Self.text(batchData)), "prepare-batch answered \(Self.text(batchData))")
            let (locked, handleData) = try await anonymous.post("/lock/\(batch)")
            #expect(locked == 200)
            let handle = try #require(Int(Self.text(handleData)))
            let (status, statusData) = try await anonymous.get("/handle-status/\(handle)")
            #expect(status == 200 && Self.text(statusData) == #"{"assigned":false}"#, "\(Self.text(statusData))")
            #expect(try await anonymous.post("/release/\(handle)").0 == 200)
            #expect(try await anonymous.post("/cancel-batch/\(batch)").0 == 200)
            // Nothing else without a key, not even reads.
            for path in ["/v1/pool", "/v1/batches", "/v1/handles", "/v1/clients/me", "/v1/events"] {
                let (code, body) = try await anonymous.get(path)
                #expect(code == 401 && Self.text(body).contains("unauthenticated"), "GET \(path): \(code) \(Self.text(body))")
            }
            // A key that is sent is checked, trusted network or not.
            let wrong = "vmc_" + String(repeating: "A", count: 43)
            #expect(try await anonymous.post("/set-pool-size/0/0/0?key=\(wrong)").0 == 401)
            #expect(try await api.with(key: wrong).post("/set-pool-size/0/0/0").0 == 401)
            #expect(try await anonymous.post("/set-pool-size/0/0/0?key=\(adminKey)").0 == 200)

            // An application's key is that application, even from loopback: no pool sizing.
            let app = try await api.postJSON("/v1/clients", ["email": "control@example.org"]) as! [String: Any]
            let appKey = try #require(app["key"] as? String)
            let appId = try #require(app["id"] as? Int)
            #expect(try await anonymous.post("/set-pool-size/0/0/0?key=\(appKey)").0 == 403)
            #expect(try await api.with(key: appKey).post("/set-pool-size/0/0/0").0 == 403)
            // Its batch is its own; the anonymous control app on loopback acts as an admin.
            let (_, appBatchData) = try await anonymous.post("/prepare-batch/1/http%3A%2F%2Fexample.test%2F?key=\(appKey)")
            let appBatch = try #require(Int(Self.text(appBatchData)))
            let other = try await api.postJSON("/v1/clients", ["email": "other@example.org"]) as! [String: Any]
            #expect(try await api.with(key: other["key"] as? String).post("/lock/\(appBatch)").0 == 404)
            #expect(try await api.with(key: appKey).post("/lock/\(appBatch)").0 == 200)

            // A signed request over a real socket: the path is signed as the client sent it.
            let path = "/prepare-batch/1/http%3A%2F%2Fsigned.test%2F?x=1"
            let timestamp = Int64(Date().timeIntervalSince1970)
            let nonce = UUID().uuidString
            let canonical = RequestSignature.canonical(method: "POST", path: path, timestamp: timestamp, nonce: nonce, body: [UInt8]())
            let headers = ["X-Vmcloud-Client": String(appId), "X-Vmcloud-Timestamp": String(timestamp), "X-Vmcloud-Nonce": nonce,
                           "X-Vmcloud-Signature": RequestSignature.sign(canonical, key: ClientKey.signingKey(appKey))]
            let (signed, signedBody) = try await Self.raw(api, "POST", path, headers: headers)
            #expect(signed == 200 && Int(signedBody) != nil, "signed: \(signed) \(signedBody)")
            let (replayed, _) = try await Self.raw(api, "POST", path, headers: headers)
            #expect(replayed == 401, "the same signed request again")

            // The server flushes request counts by itself (every second): 5 requests of the app
            // above (2 refused with 403, a batch, a lock, a signed batch; the replay is not one).
            try await eventually("the application's requests are counted", timeout: 10) {
                let view = try await api.json("/v1/clients/\(appId)") as! [String: Any]
                return (view["stats"] as? [String: Any])?["requests"] as? Int == 5
            }
            let view = try await api.json("/v1/clients/\(appId)") as! [String: Any]
            #expect((view["stats"] as? [String: Any])?["batches"] as? Int == 2, "\(view)")

            // The admin key: mode 0600, printed once.
            let keyFile = appliance.stateDir + "/admin.key"
            #expect(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int == 0o600)
            #expect(try String(contentsOfFile: keyFile, encoding: .utf8) == adminKey + "\n")
            let log = try String(contentsOfFile: appliance.logPath, encoding: .utf8)
            #expect(Self.occurrences(of: adminKey, in: log) == 1, "the key is printed once")
            #expect(Self.occurrences(of: "admin client created", in: log) == 1)
            #expect(!log.contains(appKey), "application keys are never logged")

            // A restart on the same state: the same admin, the same key, nothing printed.
            appliance.stop()
            try await appliance.start()
            #expect(appliance.adminKey == adminKey)
            #expect(try await api.get("/v1/pool").0 == 200, "the old admin key still works")
            let clients = try await api.json("/v1/clients") as! [[String: Any]]
            #expect(clients.filter { $0["role"] as? String == "admin" }.count == 1, "\(clients)")
            #expect(clients.count == 3)
            let after = try String(contentsOfFile: appliance.logPath, encoding: .utf8)
            #expect(after.count > log.count, "the log grew with the second start")
            #expect(Self.occurrences(of: adminKey, in: after) == 1, "not printed again")
            #expect(Self.occurrences(of: "admin client created", in: after) == 1)
            // The replay table survives the restart.
            #expect(try await Self.raw(api, "POST", path, headers: headers).0 == 401, "a replay across a restart")
            #expect(try await anonymous.post("/set-pool-size/0/0/0").0 == 200)
        }
    }

    @Test func withOtherTrustedNetworksLoopbackNeedsAKey() async throws {
        try await withAppliance("legacy-untrusted", arguments: ["--trusted-network", "10.255.255.0/24"]) { run in
            let (appliance, api) = (run.appliance, run.api)
            let anonymous = api.with(key: nil)
            let adminKey = try #require(appliance.adminKey)
            for (method, path) in [("POST", "/set-pool-size/0/0/0"), ("POST", "/prepare-batch/1/http%3A%2F%2Fexample.test%2F"),
                                   ("POST", "/lock/1"), ("POST", "/release/1"), ("GET", "/handle-status/1"), ("POST", "/cancel-batch/1")] {
                let (code, body) = try await anonymous.request(method, path)
                #expect(code == 401, "\(method) \(path) from 127.0.0.1: \(code) \(Self.text(body))")
                #expect(Self.text(body).contains("trusted networks"), "\(Self.text(body))")
            }
            // With a key it works as before: ?key= or the header.
            #expect(try await anonymous.post("/set-pool-size/0/0/0?key=\(adminKey)") == (200, Data()))
            #expect(try await api.post("/set-pool-size/0/0/0") == (200, Data()))
            let (prepared, batch) = try await anonymous.post("/prepare-batch/1/http%3A%2F%2Fexample.test%2F?key=\(adminKey)")
            #expect(prepared == 200 && Int(Self.text(batch)) != nil)
        }
    }
}
