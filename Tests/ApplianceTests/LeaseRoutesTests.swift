import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The lease fields and the keepalive route through the real router and store: who may keep a
/// handle alive, what the answers show, and the refusal for an ended handle.
@Suite struct LeaseRoutesTests {
    static func object(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
    }

    @Test func aLeasedHandleIsKeptAliveOnlyByItsOwner() async throws {
        let harness = try await APIHarness()
        let store = harness.pool.store
        let owner = try await store.createClient(email: "owner@example.test", role: .application, groups: []).1.text
        let other = try await store.createClient(email: "other@example.test", role: .application, groups: []).1.text
        let expiresAt = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        try await harness.test { client in
            func call(_ method: HTTPRequest.Method, _ uri: String, key: String, body: String? = nil) async throws -> TestResponse {
                try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(key)"], body: body.map { ByteBuffer(string: $0) })
            }
            let created = try await call(.post, "/v1/batches", key: owner,
                                         body: #"{"size":1,"homepage":"http://a.test/","leaseSeconds":30,"expiresAt":"\#(expiresAt)"}"#)
            #expect(created.status == .created)
            let batch = Self.object(created)
            #expect(batch["leaseSeconds"] as? Int == 30 && batch["expiresAt"] as? String == expiresAt, "\(batch)")
            let locked = Self.object(try await call(.post, "/v1/batches/\(batch["id"] as! Int)/locks", key: owner))
            let handle = try #require(locked["id"] as? Int)
            #expect(locked["leaseSeconds"] as? Int == 30 && locked["leaseExpiresAt"] is String, "\(locked)")

            // handle-status shows the lease of a waiting handle beside the seed's fields.
            let status = Self.object(try await call(.get, "/handle-status/\(handle)", key: owner))
            #expect(status["assigned"] as? Bool == false && status["leaseSeconds"] as? Int == 30 && status["leaseExpiresAt"] is String, "\(status)")

            // Another tenant gets the answer an unknown handle gets, byte for byte but the id.
            let unknown = try await call(.post, "/v1/handles/999999/keepalive", key: other)
            let foreign = try await call(.post, "/v1/handles/\(handle)/keepalive", key: other)
            #expect(unknown.status == .notFound && foreign.status == .notFound)
            #expect(String(buffer: foreign.body) == String(buffer: unknown.body).replacingOccurrences(of: "999999", with: "\(handle)"))
            #expect(String(buffer: foreign.body) == #"{"error":"not_found","message":"no handle \#(handle)"}"#)

            let kept = try await call(.post, "/v1/handles/\(handle)/keepalive", key: owner)
            #expect(kept.status == .ok && Self.object(kept)["leaseExpiresAt"] is String)

            // Ended: a clear 409, and handle-status is the seed's bare answer again.
            #expect(try await call(.post, "/release/\(handle)", key: owner).status == .ok)
            let ended = try await call(.post, "/v1/handles/\(handle)/keepalive", key: owner)
            #expect(ended.status == .conflict)
            #expect(String(buffer: ended.body) == #"{"error":"handle_ended","message":"handle \#(handle) is released: there is nothing to keep alive"}"#)
            #expect(String(buffer: try await call(.get, "/handle-status/\(handle)", key: owner).body) == #"{"assigned":false}"#)
        }
    }
}
