import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// The monitor's routes over the in-process router: the page is open, its data is not; the
/// live feed (and only it) takes `?key=`; the host figures are plausible.
@Suite struct MonitorRoutesTests {
    @Test func pageIsOpenDataNeedsTheAdminKey() async throws {
        let harness = try await APIHarness()
        try await harness.test(authenticated: false) { client in
            let page = try await AuthTests.send(client, .get, "/static/monitor.html")
            #expect(page.status == 200 && page.text.contains("vmcloud monitor"), "\(page)")
            for path in ["/v1/monitor/events", "/v1/host", "/v1/host?key=\(harness.adminKey)"] {
                #expect(try await AuthTests.send(client, .get, path).status == 401, "\(path)")
            }
            #expect(try await AuthTests.send(client, .post, "/v1/vms/1/viewer-links").status == 401)
            // Without Accept: text/event-stream the feed answers one snapshot.
            let feed = try await AuthTests.send(client, .get, "/v1/monitor/events?key=\(harness.adminKey)")
            #expect(feed.status == 200, "\(feed)")
            #expect(feed.object["vms"] is [Any] && feed.object["pool"] is [String: Any], "\(feed)")
            #expect(try await AuthTests.send(client, .get, "/v1/monitor/events?key=wrong").status == 401)
        }
    }

    @Test func hostFigures() async throws {
        let harness = try await APIHarness()
        try await harness.test { client in
            let answer = try await AuthTests.send(client, .get, "/v1/host")
            #expect(answer.status == 200, "\(answer)")
            let host = try #require(answer.object["host"] as? [String: Any], "\(answer)")
            #expect(answer.object["vms"] as? Int == 0)
            #expect((host["cpus"] as? Int ?? 0) >= 1)
            #expect((host["memoryTotalBytes"] as? Int ?? 0) > (host["memoryAvailableBytes"] as? Int ?? .max) - 1)
            #expect((host["diskTotalBytes"] as? Int ?? 0) > 0 && (host["load"] as? [Double])?.count == 3, "\(host)")
            // A VM that no handle holds has no viewer links; an unknown one is a 404.
            #expect(try await AuthTests.send(client, .post, "/v1/vms/999999/viewer-links").status == 404)
        }
    }

    /// The feed's queue length is the store's count of waiting handles: locks on a batch with no
    /// VM to give wait, and a released one stops counting.
    @Test func feedCountsWaitingHandles() async throws {
        let harness = try await APIHarness()
        try await harness.test { client in
            let batch = try await AuthTests.send(client, .post, "/v1/batches", body: #"{"size":2,"homepage":"http://a.test/"}"#)
            #expect(batch.status == 201, "\(batch)")
            let id = try #require(batch.object["id"] as? Int)
            var handles: [Int] = []
            for _ in 0..<2 {
                let lock = try await AuthTests.send(client, .post, "/v1/batches/\(id)/locks")
                #expect(lock.status == 201 && lock.object["state"] as? String == "waiting", "\(lock)")
                handles.append(try #require(lock.object["id"] as? Int))
            }
            #expect(try await AuthTests.send(client, .get, "/v1/monitor/events").object["waiting"] as? Int == 2)
            #expect(try await AuthTests.send(client, .post, "/v1/handles/\(handles[0])/release").status == 200)
            #expect(try await AuthTests.send(client, .get, "/v1/monitor/events").object["waiting"] as? Int == 1)
        }
    }

    @Test func meminfoParsing() {
        let text = "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n"
        #expect(HostFigures.kibibytes("MemTotal", in: text) == 8_000_000)
        #expect(HostFigures.kibibytes("MemAvailable", in: text) == 4_000_000)
        #expect(HostFigures.kibibytes("Missing", in: text) == 0)
    }
}
