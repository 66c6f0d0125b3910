import Foundation
import Testing

/// Leases and batch expiry on a real appliance, a real guest (test image, TCG) on the NAT
/// network: an application that stops polling loses its VM at the lease's end, through the
/// release path (reset, back to the pool), and a batch is cancelled at its expiresAt.
@Suite(.serialized) struct LeaseTests {
    static func date(_ value: Any?) -> Date? { (value as? String).flatMap { ISO8601DateFormatter().date(from: $0) } }

    @Test func anUnpolledHandleIsReleasedAtItsLeaseEndAndAnExpiredBatchIsCancelled() async throws {
        try await withAppliance("leases") { run in
            let admin = run.api
            func register(_ email: String) async throws -> HTTPTestClient {
                admin.with(key: try await admin.object("POST", "/v1/clients", ["email": email], status: 201)["key"] as? String)
            }
            let owner = try await register("lease-owner@example.org"), other = try await register("lease-other@example.org")
            _ = try await admin.postOK("/set-pool-size/1/1/0")
            try await eventually("an idle VM", timeout: 120) { try await run.live().first?["state"] as? String == "idle" }
            let vm = try #require(try await run.live().first?["id"] as? Int)

            let batch = try await owner.object("POST", "/v1/batches", ["size": 1, "homepage": "http://example.test/", "leaseSeconds": 10], status: 201)
            #expect(batch["leaseSeconds"] as? Int == 10)
            let batchId = try #require(batch["id"] as? Int)
            let handle = try #require(try await owner.object("POST", "/v1/batches/\(batchId)/locks", status: 201)["id"] as? Int)
            try await eventually("the lock is assigned", timeout: 60) { try await owner.handleStatus("\(handle)")["assigned"] as? Bool == true }

            // Each poll (legacy handle-status, the v1 read) and each keepalive moves the lease's end.
            var ends: [Date] = []
            for step in 0..<4 {
                try await Task.sleep(for: .seconds(1))
                let answer: [String: Any] = switch step {
                case 0, 1: try await owner.handleStatus("\(handle)")
                case 2: try await owner.object("GET", "/v1/handles/\(handle)")
                default: try await owner.object("POST", "/v1/handles/\(handle)/keepalive")
                }
                #expect(answer["leaseSeconds"] as? Int == 10, "\(answer)")
                let end = try #require(Self.date(answer["leaseExpiresAt"]), "\(answer)")
                #expect(abs(end.timeIntervalSinceNow - 10) < 1.5, "the lease ends 10 s after the poll: \(end)")
                if let last = ends.last { #expect(end > last, "poll \(step) moved the end") }
                ends.append(end)
            }
            let lastKeptAt = Date()
            // Another client's keepalive is refused as an unknown handle's, and keeps nothing alive.
            let (unknownStatus, unknown) = try await other.send("POST", "/v1/handles/99999/keepalive")
            let (foreignStatus, foreign) = try await other.send("POST", "/v1/handles/\(handle)/keepalive")
            #expect(unknownStatus == 404 && foreignStatus == 404)
            #expect((foreign as? [String: String]) == ["error": "not_found", "message": "no handle \(handle)"])
            #expect((unknown as? [String: String])?["message"] == "no handle 99999")

            // Meanwhile a batch that expires in 5 s, with two locks waiting (the only VM is held).
            let expiresText = ISO8601DateFormatter().string(from: Date().addingTimeInterval(5))
            let expiresAt = try #require(Self.date(expiresText))
            let expiring = try await owner.object("POST", "/v1/batches", ["size": 1, "homepage": "http://example.test/", "expiresAt": expiresText], status: 201)
            let expiringId = try #require(expiring["id"] as? Int)
            #expect(expiring["expiresAt"] as? String == expiresText)
            for _ in 0..<2 { #expect(try await owner.object("POST", "/v1/batches/\(expiringId)/locks", status: 201)["state"] as? String == "waiting") }
            // Watched through the batch (not a handle poll, so it keeps no lease alive).
            func handles(_ batch: Int) async throws -> [[String: Any]] {
                try await admin.object("GET", "/v1/batches/\(batch)")["handles"] as? [[String: Any]] ?? []
            }
            try await eventually("the expiring batch is cancelled", timeout: 15) {
                try await admin.object("GET", "/v1/batches/\(expiringId)")["state"] as? String == "cancelled"
            }
            let cancelledAfter = Date().timeIntervalSince(expiresAt)
            #expect(cancelledAfter >= 0 && cancelledAfter < 2, "cancelled \(cancelledAfter) s after expiresAt")
            for waiting in try await handles(expiringId) {
                #expect(waiting["state"] as? String == "cancelled" && waiting["reason"] as? String == "batch expired", "\(waiting)")
            }

            // No poll since lastKeptAt: released 10 s later (the pass is scheduled for the deadline).
            try await eventually("the unpolled handle is released", timeout: 20) {
                try await handles(batchId).first?["state"] as? String == "released"
            }
            let releasedAfter = Date().timeIntervalSince(lastKeptAt)
            #expect(releasedAfter > 9.5 && releasedAfter < 12, "released \(releasedAfter) s after the last keepalive, lease 10 s")
            let released = try #require(try await handles(batchId).first)
            #expect(released["reason"] as? String == "lease expired (10 s without a keepalive)")
            let endedAfter = try #require(Self.date(released["endedAt"])).timeIntervalSince(lastKeptAt)
            #expect(endedAfter > 8.5 && endedAfter < 12, "endedAt \(endedAfter) s after the last keepalive (1 s resolution)")

            // Its VM is reset and back in the pool, and the events say why.
            try await eventually("the VM is idle in no batch", timeout: 60) {
                let row = try await admin.object("GET", "/v1/vms/\(vm)")
                return row["state"] as? String == "idle" && row["batch"] == nil
            }
            let events = (try await admin.json("/v1/events?limit=200") as! [[String: Any]]).reversed()
            let expiry = try #require(events.first { $0["kind"] as? String == "handle.lease_expired" && $0["handle"] as? Int == handle })
            #expect(expiry["vm"] as? Int == vm)
            let after = events.drop { $0["id"] as? Int != expiry["id"] as? Int }
            let vmKinds = after.filter { $0["vm"] as? Int == vm }.compactMap { $0["kind"] as? String }
            #expect(vmKinds.starts(with: ["handle.lease_expired", "vm.resetting", "handle.released", "vm.idle"]), "\(vmKinds)")
            #expect(events.contains { $0["kind"] as? String == "batch.expired" && $0["batch"] as? Int == expiringId })

            // An ended handle: its keepalive is a clear conflict, its status the seed's bare answer.
            let (endedStatus, ended) = try await owner.send("POST", "/v1/handles/\(handle)/keepalive")
            #expect(endedStatus == 409 && (ended as? [String: String])?["error"] == "handle_ended")
            #expect(try await owner.handleStatus("\(handle)").keys.sorted() == ["assigned"])
        }
    }
}
