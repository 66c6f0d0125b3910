import Foundation
import Testing

/// The monitor page (/static/monitor.html) in headless Chromium against the real binary and the
/// test image: it lists the pool's VMs from its live feed, its pool form changes the pool, a VM
/// that boots appears without a reload, a VM's screen opens, and the page is not blank.
@Suite(.serialized) struct MonitorPageTests {
    @Test(.timeLimit(.minutes(3))) func monitorInChromium() async throws {
        try await withAppliance("monitor") { run in
            let api = run.api
            #expect(try await api.postOK("/set-pool-size/1/1/0") == "")
            try await eventually("one VM idle", timeout: 90) {
                try await run.live().contains { $0["state"] as? String == "idle" }
            }
            // The page is served without a key; its data calls are not.
            #expect(try await api.get("/static/monitor.html").0 == 200)

            let started = Date()
            let out = try await runScriptWithoutBlocking(
                "monitor_check.py", [run.appliance.baseURL, run.appliance.adminKey ?? "", run.directory])
            let result = try lastLineJSON(out, from: "monitor_check.py")
            print("monitor_check.py took \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(result)")
            #expect(result["error"] == nil, "\(result)")

            // Listed from the feed: the one VM the API has.
            let first = try #require(result["first_vms"] as? [[String: Any]], "\(result)")
            #expect(first.count == 1 && (result["rows"] as? Int) == 1, "\(result)")
            // The form's size reached the pool, and the pool grew to it.
            let pool = try #require(result["pool_after_form"] as? [String: Any])
            #expect(pool["min"] as? Int == 2 && pool["max"] as? Int == 2, "\(pool)")
            let ready = try await run.live().filter { ["idle", "locked", "working"].contains($0["state"] as? String) }
            #expect(ready.count >= 2, "\(ready)")
            // Live: the second VM arrived in the same page, carried by more than one snapshot.
            #expect((result["rows_after_boot"] as? Int ?? 0) >= 2, "\(result)")
            #expect(result["not_reloaded"] as? Bool == true)
            #expect((result["snapshots"] as? Int ?? 0) >= 2)
            // The screen opened view-only in the viewer page.
            #expect(result["viewer"] as? [String] == ["connected", "view"], "\(result)")
            #expect(result["viewer_canvas"] as? Bool == true)
            // The saved page shows something: a blank page has one or two colours.
            #expect((result["screenshot_colours"] as? Int ?? 0) > 50, "\(result)")
            // The VM's row shows its screen: a thumbnail image that loaded, not an empty black box
            // (the test image's console text, scaled down, gives many grey levels).
            let natural = result["thumbnail_natural"] as? [Int] ?? []
            #expect(natural.count == 2 && natural[0] > 0 && natural[1] > 0, "\(result)")
            #expect((result["thumbnail_colours"] as? Int ?? 0) > 20, "\(result)")
            if let shot = result["screenshot"] as? String {
                let kept = NSTemporaryDirectory() + "monitor-page.png"
                try? FileManager.default.removeItem(atPath: kept)
                try? FileManager.default.copyItem(atPath: shot, toPath: kept)
                print("monitor page screenshot: \(kept)")
            }
        }
    }

}
