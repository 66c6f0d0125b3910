import AudioTestSupport
import Foundation
import Testing

/// Three browser-image VMs (Chromium, under TCG) at once on libvirt's NAT network, the serve
/// default: each has its own address and fetches its batch's homepage from the host; cookies
/// reach only their own batch's pages; every visited page is captured; a tone played by the
/// page inside one guest reaches that VM's audio link and no other; a release leaves a clean
/// slate; a guest whose QEMU dies is replaced while the others carry on; a capture job runs in
/// Chromium.
@Suite(.serialized) struct RealBrowserTests {
    static let poolSize = 3

    @Test(.timeLimit(.minutes(45))) func threeBrowsersOnNAT() async throws {
        let site = try TestSite()
        defer { site.stop() }
        try await withAppliance("browser", image: .browser) { run in
            try await scenario(run, site)
        }
    }

    func scenario(_ run: ApplianceRun, _ site: TestSite) async throws {
        let api = run.api
        let homepage = site.guestBase + "/index.html"
        _ = try await api.postOK("/set-pool-size/\(Self.poolSize)/\(Self.poolSize)/3600000")
        try await eventually("\(Self.poolSize) idle browser VMs", timeout: 900) {
            try await run.live().filter { $0["state"] as? String == "idle" }.count == Self.poolSize
        }
        // Three clones of one image: each must still have its own DHCP identity and lease.
        let ips = try NATNetwork.expectLeasedIPs(try await run.live())
        #expect(ips.count == Self.poolSize)

        // Batch A (2 VMs) sets the cookie color=c0ffee for the site; batch B (1 VM) sets none.
        let cookie = ["name": "color", "value": "c0ffee", "domain": site.host, "path": "/"]
        let batchA = try await api.postJSON("/v1/batches", ["size": 2, "homepage": homepage, "cookies": [cookie]]) as! [String: Any]
        let batchB = try await api.postJSON("/v1/batches", ["size": 1, "homepage": homepage]) as! [String: Any]
        let handlesA = [try await api.postOK("/lock/\(batchA["id"] as! Int)"), try await api.postOK("/lock/\(batchA["id"] as! Int)")]
        let handleB = try await api.postOK("/lock/\(batchB["id"] as! Int)")
        var vms: [String: [String: Any]] = [:]
        try await eventually("three locks get configured browser VMs", timeout: 900) {
            for handle in handlesA + [handleB] where vms[handle] == nil {
                let status = try await api.handleStatus(handle)
                if status["assigned"] as? Bool == true { vms[handle] = status["vm"] as? [String: Any] }
            }
            return vms.count == 3
        }
        func vmId(_ handle: String) -> Int { vms[handle]!["id"] as! Int }
        func domain(_ handle: String) -> String { vms[handle]!["domain"] as! String }
        #expect(Set(vms.values.compactMap { $0["id"] as? Int }).count == 3, "three distinct VMs")

        func pages(_ handle: String) async throws -> [[String: Any]] {
            try await api.json("/v1/handles/\(handle)/pages") as! [[String: Any]]
        }
        func mhtml(_ page: [String: Any]) async throws -> String {
            decodeQuotedPrintable(String(decoding: try await api.bytes(page["mhtml"] as! String), as: UTF8.self))
        }
        func homepageCapture(_ handle: String) async throws -> String {
            try await eventually("the homepage of \(handle) is captured", timeout: 300) {
                try await pages(handle).contains { ($0["url"] as? String) == homepage }
            }
            return try await mhtml(try await pages(handle).first { ($0["url"] as? String) == homepage }!)
        }
        for handle in handlesA {
            #expect(try await homepageCapture(handle).contains("cookie-value:c0ffee"), "batch A's page shows its cookie")
            let share = try screenShare(domain: domain(handle), color: "c0ffee", directory: run.directory)
            #expect(share > 0.3, "VM \(vmId(handle))'s screen shows the cookie's colour (\(share))")
        }
        #expect(try await homepageCapture(handleB).contains("cookie-value:none"), "batch A's cookie did not reach batch B's VM")
        #expect(try screenShare(domain: domain(handleB), color: "c0ffee", directory: run.directory) < 0.05)
        // Each VM fetched the homepage itself, from its own leased address.
        let fetchedBy = site.clients(fetching: "/index.html")
        for handle in handlesA + [handleB] {
            #expect(fetchedBy.contains(ips[vmId(handle)] ?? "-"), "VM \(vmId(handle)) at \(ips[vmId(handle)] ?? "-") fetched the homepage: \(fetchedBy)")
        }

        // A link followed through DevTools: captured with a screenshot and the second page's text.
        let (a1, a2) = (handlesA[0], handlesA[1])
        _ = try await api.postJSON("/v1/vms/\(vmId(a1))/navigate", ["url": site.guestBase + "/second.html"])
        try await eventually("the second page is captured", timeout: 300) {
            try await pages(a1).contains { ($0["url"] as? String)?.hasSuffix("/second.html") == true }
        }
        let second = try await pages(a1).first { ($0["url"] as? String)?.hasSuffix("/second.html") == true }!
        #expect(try await mhtml(second).contains("second-page-text"))
        let png = try await api.bytes(second["screenshot"] as! String)
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 1000, "a real PNG screenshot")

        // Sound from inside the guests (Chromium -> the guest's PulseAudio -> its HDA card ->
        // QEMU -> the VM's sink): A1 plays 1 kHz, B 440 Hz, A2 stays silent. Each audio link
        // carries its own VM's tone and nothing of the others.
        _ = try await api.postJSON("/v1/vms/\(vmId(a1))/navigate", ["url": site.guestBase + "/tone.html?f=1000"])
        _ = try await api.postJSON("/v1/vms/\(vmId(handleB))/navigate", ["url": site.guestBase + "/tone.html?f=440"])
        func audioURL(_ handle: String) throws -> String {
            try #require((vms[handle]!["viewer"] as? [String: Any])?["audioUrl"] as? String)
        }
        let (urlA1, urlA2, urlB) = (try audioURL(a1), try audioURL(a2), try audioURL(handleB))
        var heard: [String: (k1: Double, a440: Double)] = [:]
        try await eventually("each guest's tone reaches its own audio link", timeout: 180) {
            async let listenA1 = listen(urlA1, "a1", run.directory)
            async let listenA2 = listen(urlA2, "a2", run.directory)
            async let listenB = listen(urlB, "b", run.directory)
            let (wavA1, wavA2, wavB) = try await (listenA1, listenA2, listenB)
            heard = [
                "a1": (toneSeconds(wavA1, frequency: 1000), toneSeconds(wavA1, frequency: 440)),
                "a2": (toneSeconds(wavA2, frequency: 1000), toneSeconds(wavA2, frequency: 440)),
                "b": (toneSeconds(wavB, frequency: 1000), toneSeconds(wavB, frequency: 440)),
            ]
            return heard["a1"]!.k1 > 1.0 && heard["b"]!.a440 > 1.0
        }
        print("audio (s of 1 kHz, s of 440 Hz in 4 s): \(heard)")
        #expect(heard["a1"]!.a440 < 0.2 && heard["b"]!.k1 < 0.2, "no tone crossed between VMs: \(heard)")
        #expect(heard["a2"]!.k1 < 0.2 && heard["a2"]!.a440 < 0.2, "the silent VM's link carries neither tone: \(heard)")
        let earlierPages = Set(try await pages(a1).compactMap { $0["id"] as? Int })
        let pagesOfA2 = try await pages(a2).count

        // Clean slate: release A1; a new batch without a cookie gets the same VM (the only idle one).
        _ = try await api.postOK("/release/\(a1)")
        try await eventually("the VM is back in the pool", timeout: 600) {
            (try await api.json("/v1/vms/\(vmId(a1))") as! [String: Any])["state"] as? String == "idle"
        }
        let plain = try await api.postOK("/prepare-batch/1/\(homepage.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)")
        let next = try await api.postOK("/lock/\(plain)")
        try await eventually("the new lock is assigned", timeout: 900) {
            try await api.handleStatus(next)["assigned"] as? Bool == true
        }
        #expect(try await api.handleStatus(next)["vmid"] as? Int == vmId(a1), "the same VM serves the next user")
        try await eventually("the new session's homepage is captured", timeout: 300) {
            try await pages(next).contains { ($0["url"] as? String) == homepage }
        }
        let fresh = try await pages(next)
        #expect(Set(fresh.compactMap { $0["id"] as? Int }).isDisjoint(with: earlierPages), "no page of the last session is listed")
        #expect(try await mhtml(fresh.first { ($0["url"] as? String) == homepage }!).contains("cookie-value:none"))
        let agent = try await api.json("/v1/vms/\(vmId(a1))/agent") as! [String: Any]
        let history = agent["history"] as? [String] ?? []
        #expect(!history.contains { $0.hasSuffix("/second.html") }, "the browser history was wiped: \(history)")
        #expect((agent["cookies"] as? [[String: Any]] ?? []).isEmpty, "no cookie survived the reset")
        #expect(try screenShare(domain: domain(a1), color: "c0ffee", directory: run.directory) < 0.05)
        for handle in [a2, handleB] {
            #expect(try await api.handleStatus(handle)["assigned"] as? Bool == true, "another VM's reset left \(handle) alone")
        }
        #expect(try await pages(a2).count == pagesOfA2)

        // B's QEMU dies: its handle is lost, A2 carries on, and a replacement boots Chromium with
        // its own lease.
        _ = try runTool("/usr/bin/pkill", ["-KILL", "-f", "guest=\(domain(handleB)),"])
        try await eventually("B's handle is lost", timeout: 20) {
            (try await api.json("/v1/handles/\(handleB)") as! [String: Any])["state"] as? String == "lost"
        }
        #expect(try await api.handleStatus(a2)["assigned"] as? Bool == true, "the crash of B's VM left A2 alone")
        let firstThree = Set(vms.values.compactMap { $0["id"] as? Int })
        try await eventually("a replacement browser VM is idle", timeout: 900) {
            try await run.live().contains { $0["state"] as? String == "idle" && !firstThree.contains($0["id"] as? Int ?? -1) }
        }
        try NATNetwork.expectLeasedIPs(try await run.live())

        // A capture job in Chromium, with a cookie and a wait condition: the idle replacement
        // takes it and returns a real screenshot and the MHTML of the page with the cookie.
        let job = try await api.object("POST", "/v1/jobs", [
            "url": homepage, "waitForText": "cookie-value:abcdef", "timeoutMs": 240_000,
            "cookies": [["name": "color", "value": "abcdef", "domain": site.host, "path": "/"]],
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

        // Scale to zero: every domain goes, and with it every lease it held.
        let macs = try await run.live().map { try NATNetwork.mac(domain: $0["domain"] as! String) }
        for handle in [a2, next] { _ = try await api.postOK("/release/\(handle)") }
        _ = try await api.postOK("/set-pool-size/0/0/0")
        try await eventually("no browser VMs left", timeout: 120) {
            try await run.live().isEmpty && (try virshDomainNames(prefix: run.prefix)).isEmpty
        }
        let left = try NATNetwork.leases().filter { macs.contains($0.mac) }
        #expect(left.isEmpty, "the destroyed VMs' leases were released: \(left)")
    }

    /// Four seconds of one audio link, decoded.
    func listen(_ url: String, _ name: String, _ directory: String) async throws -> DecodedWAV {
        let file = directory + "/guest-tone-\(name).opus"
        _ = try await runScriptWithoutBlocking("audio_listen.py", [url, "4", file])
        return try decodeWithOpusdec([UInt8](Data(contentsOf: URL(fileURLWithPath: file)))).wav
    }
}
