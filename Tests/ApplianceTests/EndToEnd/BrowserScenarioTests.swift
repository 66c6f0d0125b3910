import AudioTestSupport
import Foundation
import Testing

/// Issue 3's checks on a real browser VM (Chromium in the browser image, under TCG): cookies
/// reach the page, every visited page is captured, and a release leaves a clean slate.
@Suite(.serialized) struct BrowserScenarioTests {
    @Test(.timeLimit(.minutes(30))) func cookieCaptureNavigationAndCleanSlate() async throws {
        let site = try TestSite()
        defer { site.stop() }
        try await withAppliance("browser", image: .browser) { run in
            try await scenario(run, site)
        }
    }

    func scenario(_ run: ApplianceRun, _ site: TestSite) async throws {
        let api = run.api
        let homepage = site.guestBase + "/index.html"
        _ = try await api.postOK("/set-pool-size/1/1/3600000")

        // A batch whose VMs get a cookie; the page shows its value.
        let batch = try await api.postJSON("/v1/batches", [
            "size": 1, "homepage": homepage,
            "cookies": [["name": "color", "value": "c0ffee", "domain": "10.0.2.2", "path": "/"]],
        ]) as! [String: Any]
        let handle = try await api.postOK("/lock/\(batch["id"] as! Int)")
        try await eventually("the lock gets a configured browser VM", timeout: 900) {
            try await api.handleStatus(handle)["assigned"] as? Bool == true
        }
        let status = try await api.handleStatus(handle)
        let vm = status["vm"] as! [String: Any]
        let vmId = vm["id"] as! Int
        #expect((vm["pages"] as? [String: Any])?["list"] as? String == "/v1/handles/\(handle)/pages")

        func pages(_ handle: String) async throws -> [[String: Any]] {
            try await api.json("/v1/handles/\(handle)/pages") as! [[String: Any]]
        }
        func mhtml(_ page: [String: Any]) async throws -> String {
            decodeQuotedPrintable(String(decoding: try await api.bytes(page["mhtml"] as! String), as: UTF8.self))
        }
        try await eventually("the homepage is captured", timeout: 300) {
            try await pages(handle).contains { ($0["url"] as? String) == homepage }
        }
        let first = try await pages(handle).first { ($0["url"] as? String) == homepage }!
        #expect(try await mhtml(first).contains("cookie-value:c0ffee"), "the captured page shows the cookie")
        let share = try screenShare(domain: vm["domain"] as! String, color: "c0ffee", directory: run.directory)
        #expect(share > 0.3, "the VM's screen shows the cookie's colour (\(share))")

        // A link followed through DevTools: captured with a screenshot and the second page's text.
        _ = try await api.postJSON("/v1/vms/\(vmId)/navigate", ["url": site.guestBase + "/second.html"])
        try await eventually("the second page is captured", timeout: 300) {
            try await pages(handle).contains { ($0["url"] as? String)?.hasSuffix("/second.html") == true }
        }
        let second = try await pages(handle).first { ($0["url"] as? String)?.hasSuffix("/second.html") == true }!
        #expect(try await mhtml(second).contains("second-page-text"))
        let png = try await api.bytes(second["screenshot"] as! String)
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 1000, "a real PNG screenshot")

        // Sound from the guest: a page playing a 1 kHz tone through Chromium, the guest's
        // PulseAudio and its HDA card reaches a listener on the handle's audio link.
        let audioURL = try #require((vm["viewer"] as? [String: Any])?["audioUrl"] as? String)
        _ = try await api.postJSON("/v1/vms/\(vmId)/navigate", ["url": site.guestBase + "/tone.html"])
        var heard = 0.0
        try await eventually("the guest's tone reaches the audio link", timeout: 120) {
            let file = run.directory + "/guest-tone.opus"
            _ = try await runScriptWithoutBlocking("audio_listen.py", [audioURL, "4", file])
            let wav = try decodeWithOpusdec([UInt8](Data(contentsOf: URL(fileURLWithPath: file)))).wav
            heard = toneSeconds(wav, frequency: 1000)
            return heard > 1.5 && dominantFrequency(wav) == 1000
        }
        print("audio: \(heard) s of the guest's 1 kHz tone in 4 s of listening")
        let earlierPages = Set(try await pages(handle).compactMap { $0["id"] as? Int })

        // Clean slate: release, then a new batch without a cookie on the same VM.
        _ = try await api.postOK("/release/\(handle)")
        try await eventually("the VM is back in the pool", timeout: 600) {
            (try await api.json("/v1/vms/\(vmId)") as! [String: Any])["state"] as? String == "idle"
        }
        let plain = try await api.postOK("/prepare-batch/1/\(homepage.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
        let next = try await api.postOK("/lock/\(plain)")
        try await eventually("the new lock is assigned", timeout: 900) {
            try await api.handleStatus(next)["assigned"] as? Bool == true
        }
        #expect(try await api.handleStatus(next)["vmid"] as? Int == vmId, "the same VM serves the next user")
        try await eventually("the new session's homepage is captured", timeout: 300) {
            try await pages(next).contains { ($0["url"] as? String) == homepage }
        }
        let fresh = try await pages(next)
        #expect(Set(fresh.compactMap { $0["id"] as? Int }).isDisjoint(with: earlierPages), "no page of the last session is listed")
        #expect(try await mhtml(fresh.first { ($0["url"] as? String) == homepage }!).contains("cookie-value:none"))
        let agent = try await api.json("/v1/vms/\(vmId)/agent") as! [String: Any]
        let history = agent["history"] as? [String] ?? []
        #expect(!history.contains { $0.hasSuffix("/second.html") }, "the browser history was wiped: \(history)")
        #expect((agent["cookies"] as? [[String: Any]] ?? []).isEmpty, "no cookie survived the reset")
        #expect(try screenShare(domain: vm["domain"] as! String, color: "c0ffee", directory: run.directory) < 0.05)

        // A capture job in Chromium, with a cookie and a wait condition: the idle VM takes it and
        // returns a real screenshot and the MHTML of the page as it rendered the cookie.
        _ = try await api.postOK("/release/\(next)")
        let job = try await api.object("POST", "/v1/jobs", [
            "url": homepage, "waitForText": "cookie-value:abcdef", "timeoutMs": 240_000,
            "cookies": [["name": "color", "value": "abcdef", "domain": "10.0.2.2", "path": "/"]],
        ], status: 201)
        var finished: [String: Any] = [:]
        try await eventually("the capture job ends", timeout: 900) {
            finished = try await api.object("GET", "/v1/jobs/\(job["id"] as! Int)")
            return ["done", "failed"].contains(finished["state"] as? String ?? "")
        }
        #expect(finished["state"] as? String == "done", "\(finished)")
        let jobPNG = try await api.bytes(try #require(finished["screenshot"] as? String))
        #expect(jobPNG.starts(with: [0x89, 0x50, 0x4E, 0x47]) && jobPNG.count > 1000, "the job's screenshot is a real PNG")
        let jobMHTML = decodeQuotedPrintable(String(decoding: try await api.bytes(try #require(finished["mhtml"] as? String)), as: UTF8.self))
        #expect(jobMHTML.contains("cookie-value:abcdef"), "the job's MHTML shows its cookie")
    }
}
