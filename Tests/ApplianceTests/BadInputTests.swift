import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// Malformed requests against every endpoint: each gets a 4xx with a JSON error and a message,
/// and the store is byte-for-byte unchanged afterwards.
@Suite struct BadInputTests {
    struct Case: Sendable, CustomStringConvertible {
        let method: HTTPRequest.Method
        let uri: String
        var body: String? = nil
        let status: HTTPResponse.Status
        var description: String { "\(method) \(uri) \(body ?? "")" }
    }

    static let cases: [Case] = [
        // set-pool-size
        Case(method: .post, uri: "/set-pool-size/a/2/3", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/-1/2/3", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/3/2/0", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/1/2/1.5", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/1/2/-5", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/1/99999999999999999999/0", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/0/20000/0", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/%201/2/3", status: .badRequest),
        Case(method: .post, uri: "/set-pool-size/1/2", status: .notFound),
        // prepare-batch
        Case(method: .post, uri: "/prepare-batch/0/http%3A%2F%2Fexample.test%2F", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/x/http%3A%2F%2Fexample.test%2F", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/-2/http%3A%2F%2Fexample.test%2F", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/2/ftp%3A%2F%2Fexample.test%2F", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/2/not-a-url", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/2/javascript%3Aalert(1)", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/2/file%3A%2F%2F%2Fetc%2Fpasswd", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/2/http%3A%2F%2F", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/2/%ZZ", status: .badRequest),
        Case(method: .post, uri: "/prepare-batch/2/http%3A%2F%2Fa.test%2F%0Ax", status: .badRequest),
        // lock / release / handle-status / cancel-batch
        Case(method: .post, uri: "/lock/999", status: .notFound),
        Case(method: .post, uri: "/lock/abc", status: .badRequest),
        Case(method: .post, uri: "/lock/0", status: .badRequest),
        Case(method: .post, uri: "/lock/-1", status: .badRequest),
        Case(method: .post, uri: "/release/999", status: .notFound),
        Case(method: .post, uri: "/release/1e3", status: .badRequest),
        Case(method: .get, uri: "/handle-status/999", status: .notFound),
        Case(method: .get, uri: "/handle-status/abc", status: .badRequest),
        Case(method: .post, uri: "/cancel-batch/999", status: .notFound),
        Case(method: .post, uri: "/cancel-batch/1.0", status: .badRequest),
        Case(method: .post, uri: "/no-such-endpoint", status: .notFound),
        // /v1
        Case(method: .put, uri: "/v1/pool", body: "not json", status: .badRequest),
        Case(method: .put, uri: "/v1/pool", body: #"{"min":3,"max":1,"lingerMs":0}"#, status: .badRequest),
        Case(method: .put, uri: "/v1/pool", body: #"{"min":-1,"max":1,"lingerMs":0}"#, status: .badRequest),
        Case(method: .put, uri: "/v1/pool", body: #"{"min":"1","max":1,"lingerMs":0}"#, status: .badRequest),
        Case(method: .put, uri: "/v1/pool", body: #"{"min":1,"max":1}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":0,"homepage":"http://a.test/"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":2,"homepage":"file:///etc/passwd"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","browser":"fullscreen"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","browser":1}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":2.5,"homepage":"http://a.test/"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: String(repeating: "x", count: 70_000), status: .contentTooLarge),
        Case(method: .get, uri: "/v1/batches/999", status: .notFound),
        Case(method: .post, uri: "/v1/batches/999/locks", status: .notFound),
        Case(method: .post, uri: "/v1/batches/999/cancel", status: .notFound),
        Case(method: .get, uri: "/v1/handles/999", status: .notFound),
        Case(method: .post, uri: "/v1/handles/999/release", status: .notFound),
        Case(method: .get, uri: "/v1/vms/999", status: .notFound),
        Case(method: .get, uri: "/v1/vms/abc", status: .notFound),  // a generic VM's name
        Case(method: .get, uri: "/v1/vms/" + String(repeating: "a", count: 65), status: .badRequest),
        Case(method: .post, uri: "/v1/vms", body: #"{"name":"x"}"#, status: .badRequest),
        Case(method: .put, uri: "/v1/viewers/p1/codedx", body: #"{"image":"missing.qcow2"}"#, status: .badRequest),
        Case(method: .put, uri: "/v1/viewers/P1/codedx", body: #"{"image":"x"}"#, status: .badRequest),
        Case(method: .get, uri: "/v1/vms/999/agent", status: .notFound),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","cookies":[{"name":"","value":"v","domain":"a.test"}]}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","cookies":[{"name":"n","value":"a\"b","domain":"a.test"}]}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","cookies":[{"name":"n","value":"v","domain":"a.test/x"}]}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","cookies":[{"name":"n","value":"v"}]}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","cookies":{"name":"n"}}"#, status: .badRequest),
        // Leases and expiry (POST /v1/batches), keepalive.
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","leaseSeconds":4}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","leaseSeconds":86401}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","leaseSeconds":-10}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","leaseSeconds":10.5}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","leaseSeconds":"10"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","expiresAt":"2020-01-01T00:00:00Z"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","expiresAt":"2999-01-01T00:00:00Z"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","expiresAt":"tomorrow"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","expiresAt":"2030-01-01T00:00:00"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/batches", body: #"{"size":1,"homepage":"http://a.test/","expiresAt":1893456000000}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/handles/999/keepalive", status: .notFound),
        Case(method: .post, uri: "/v1/handles/abc/keepalive", status: .badRequest),
        Case(method: .get, uri: "/v1/handles/1/keepalive", status: .methodNotAllowed),
        Case(method: .post, uri: "/v1/vms/999/navigate", body: #"{"url":"http://a.test/"}"#, status: .notFound),
        Case(method: .post, uri: "/v1/vms/999/navigate", body: #"{"url":"ftp://a.test/"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/vms/999/navigate", body: #"{}"#, status: .badRequest),
        Case(method: .get, uri: "/v1/handles/999/pages", status: .notFound),
        Case(method: .get, uri: "/v1/pages/999/screenshot.png", status: .notFound),
        Case(method: .get, uri: "/v1/pages/abc/page.mhtml", status: .badRequest),
        Case(method: .get, uri: "/v1/events?limit=abc", status: .badRequest),
        Case(method: .get, uri: "/v1/events?limit=100000", status: .badRequest),
        Case(method: .get, uri: "/v1/vms?destroyed=null", status: .badRequest),
        Case(method: .get, uri: "/v1/vms?kind=generic&destroyed=true&destroyed=false", status: .badRequest),
        Case(method: .post, uri: "/v1/clients", body: #"{"email":"app@exa*mple.org"}"#, status: .badRequest),
        Case(method: .post, uri: "/v1/clients", body: #"{"email":"app@localhost"}"#, status: .badRequest),
        // A documented path asked with a method it does not have.
        Case(method: .get, uri: "/set-pool-size/1/1/0", status: .methodNotAllowed),
        Case(method: .delete, uri: "/v1/pool", status: .methodNotAllowed),
    ]

    /// The router says 404 for a path with another method; the API says 405 and which methods
    /// the path has (from the OpenAPI document), and keeps 404 for paths it does not have.
    @Test func aMethodThePathLacksIs405WithAllow() async throws {
        let harness = try await APIHarness()
        try await harness.test { client in
            for (method, uri, allow) in [(HTTPRequest.Method.delete, "/v1/pool", "GET, PUT"), (.get, "/lock/3", "POST"),
                                         (.post, "/v1/clients/me", "GET"), (.init("TRACE")!, "/v1/clients/7", "DELETE, GET")] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .methodNotAllowed, "\(method) \(uri)")
                    #expect(response.headers[.allow] == allow, "\(method) \(uri): \(response.headers)")
                }
            }
            try await client.execute(uri: "/v1/no-such-thing", method: .delete) { response in
                #expect(response.status == .notFound && response.headers[.allow] == nil)
            }
        }
    }

    @Test func everyMalformedRequestIsRefusedAndChangesNothing() async throws {
        let harness = try await APIHarness()
        // Some state to protect: a pool size, a batch with a handle.
        try await harness.pool.setPoolSize(PoolSize(min: 0, max: 0, lingerMs: 100))
        let batch = try await harness.pool.prepareBatch(size: 1, homepage: "http://example.test/")
        _ = try await harness.pool.lock(batchId: batch.id!)
        let before = try await harness.snapshot()
        try await harness.test { client in
            for c in Self.cases {
                try await client.execute(uri: c.uri, method: c.method, body: c.body.map { ByteBuffer(string: $0) }) { response in
                    #expect(response.status == c.status, "\(c)")
                    let json = try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect((json?["error"] as? String)?.isEmpty == false, "\(c): no error code in \(String(buffer: response.body))")
                    #expect((json?["message"] as? String)?.isEmpty == false, "\(c): no message")
                }
            }
        }
        #expect(try await harness.snapshot() == before)
    }

    @Test func theSeedEndpointsAnswerInTheSeedsShapes() async throws {
        let harness = try await APIHarness()
        try await harness.test { client in
            try await client.execute(uri: "/set-pool-size/0/0/1000", method: .post) { response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes == 0)
            }
            // The homepage is one URL-encoded segment, including its slashes and query.
            let homepage = "https://example.test/start?a=1&b=%2F"
            let encoded = homepage.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            try await client.execute(uri: "/prepare-batch/2/\(encoded)", method: .post) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "1")
            }
            try await client.execute(uri: "/lock/1", method: .post) { response in
                #expect(String(buffer: response.body) == "1")
            }
            try await client.execute(uri: "/handle-status/1", method: .get) { response in
                #expect(String(buffer: response.body) == #"{"assigned":false}"#)
            }
            try await client.execute(uri: "/v1/batches/1", method: .get) { response in
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(json?["homepage"] as? String == homepage)
                #expect(json?["size"] as? Int == 2)
            }
            try await client.execute(uri: "/cancel-batch/1", method: .post) { response in
                #expect(response.status == .ok && response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/release/1", method: .post) { response in
                #expect(response.status == .ok && response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/v1/handles/1", method: .get) { response in
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(json?["state"] as? String == "cancelled")
            }
        }
    }

    /// An operator request on a pool VM that is not up is a 409 that names its state, byte for
    /// byte: a VM whose domain does not run, then one whose agent has not said hello.
    @Test func aVMThatIsNotUpIsAConflictNamingItsState() async throws {
        let harness = try await APIHarness()
        let store = harness.pool.store
        let vm = try await store.insertPendingVM(domainPrefix: "vmcloud-test").id!
        try await harness.test { client in
            func expect(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil, _ answer: String) async throws {
                try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) }) { response in
                    #expect(response.status == .conflict, "\(method) \(uri)")
                    #expect(response.headers[.contentType] == "application/json; charset=utf-8", "\(method) \(uri)")
                    #expect(String(buffer: response.body) == answer, "\(method) \(uri)")
                }
            }
            let navigate = #"{"url":"http://a.test/"}"#
            let pending = #"{"error":"vm_not_running","message":"VM \#(vm) is pending"}"#
            try await expect(.get, "/v1/vms/\(vm)/agent", pending)
            try await expect(.post, "/v1/vms/\(vm)/navigate", body: navigate, pending)
            try await expect(.get, "/v1/vms/\(vm)/screenshot.png", pending)
            try await store.transition(vm: vm, .domainStarted)
            let booting = #"{"error":"vm_not_ready","message":"VM \#(vm) is booting: its agent has not said hello yet"}"#
            try await expect(.get, "/v1/vms/\(vm)/agent", booting)
            try await expect(.post, "/v1/vms/\(vm)/navigate", body: navigate, booting)
            #expect(try await store.markFailed(vm: vm, reason: "test"))
            try await expect(.get, "/v1/vms/\(vm)/thumbnail.png", #"{"error":"vm_not_running","message":"VM \#(vm) is failed"}"#)
        }
    }
}
