import Foundation
import Testing

/// Two browser-image VMs on libvirt's NAT network, used as a worker and an application would:
/// homepages that fail (a name that does not resolve, a port that refuses) still give the lock
/// a browser, with the failure in handle-status and no VM replaced; a worker in the full
/// browser, through the viewer page (noVNC in Chromium on the host), types a URL into the
/// address bar, opens a link in a new tab, follows a link and goes back, and every page is
/// captured with its tab; the viewer page's clipboard works both ways for the worker and not
/// at all for a view session; a release closes the tabs; a kiosk batch shows the page alone.
@Suite(.serialized) struct BrowserWindowTests {
    @Test(.timeLimit(.minutes(40))) func failingSitesAndTheFullBrowser() async throws {
        let site = try TestSite()
        defer { site.stop() }
        try await withAppliance("browser-window", image: .browser) { run in
            try await scenario(run, site)
        }
    }

    func scenario(_ run: ApplianceRun, _ site: TestSite) async throws {
        let api = run.api
        _ = try await api.postOK("/set-pool-size/2/2/3600000")
        try await eventually("2 idle browser VMs", timeout: 900) {
            try await run.live().filter { $0["state"] as? String == "idle" }.count == 2
        }
        let firstVMs = Set(try await run.live().compactMap { $0["id"] as? Int })

        // Sites that are down: the locks are assigned all the same, with the failure reported.
        let refusedPort = try ApplianceProcess.freePort()
        let failing = [
            ("http://no-such-host.invalid/", "ERR_NAME_NOT_RESOLVED"),
            ("http://\(site.host):\(refusedPort)/", "ERR_CONNECTION_REFUSED"),
        ]
        var handles: [String] = []
        let locked = Date()
        for (homepage, _) in failing {
            let batch = try await api.postJSON("/v1/batches", ["size": 1, "homepage": homepage]) as! [String: Any]
            handles.append(try await api.postOK("/lock/\(batch["id"] as! Int)"))
        }
        var loads: [String: [String: Any]] = [:]
        try await eventually("both locks are assigned", timeout: 600) {
            for handle in handles where loads[handle] == nil {
                let status = try await api.handleStatus(handle)
                if status["assigned"] as? Bool == true { loads[handle] = (status["vm"] as? [String: Any])?["homepageLoad"] as? [String: Any] ?? [:] }
            }
            return loads.count == handles.count
        }
        print("failing homepages: both locks assigned in \(Int(Date().timeIntervalSince(locked))) s")
        for (handle, (homepage, expected)) in zip(handles, failing) {
            let load = try #require(loads[handle])
            #expect(load["outcome"] as? String == "failed", "\(homepage): \(load)")
            #expect((load["error"] as? String)?.contains(expected) == true, "\(homepage): \(load)")
            #expect(load["at"] != nil)
        }
        let events = try await api.json("/v1/events") as! [[String: Any]]
        #expect(!events.contains { ($0["kind"] as? String) == "vm.failed" || ($0["kind"] as? String) == "pool.boots_paused" },
                "no VM fault: \(events.filter { ($0["kind"] as? String ?? "").hasPrefix("vm.") }.map { $0["kind"]! })")
        #expect(events.filter { ($0["kind"] as? String) == "vm.homepage_failed" }.count == 2)
        #expect(Set(try await run.live().compactMap { $0["id"] as? Int }) == firstVMs, "no VM was replaced")
        #expect((try await api.json("/v1/pool") as! [String: Any])["faults"] as? Int == 0)
        for handle in handles { _ = try await api.postOK("/release/\(handle)") }
        try await eventually("both VMs are idle again", timeout: 600) {
            try await run.live().filter { $0["state"] as? String == "idle" }.count == 2
        }

        // The full browser through the viewer page.
        let batch = try await api.postJSON("/v1/batches", ["size": 1, "homepage": site.guestBase + "/index.html"]) as! [String: Any]
        let worker = try await api.postOK("/lock/\(batch["id"] as! Int)")
        var vm: [String: Any] = [:]
        try await eventually("the worker's lock is assigned", timeout: 600) {
            let status = try await api.handleStatus(worker)
            vm = status["vm"] as? [String: Any] ?? [:]
            return status["assigned"] as? Bool == true
        }
        let vmId = vm["id"] as! Int
        // The clipboard both ways for the worker's control session, never for a view session
        // (while the browser shows one tab: it pastes into the page it navigates to).
        try await ClipboardCheck.check(run, site, handle: worker)
        let viewerURL = try #require((vm["viewer"] as? [String: Any])?["url"] as? String)
        let pagesURL = "\(run.appliance.baseURL)/v1/handles/\(worker)/pages"
        let walk = try runJSONScript("full_browser.py", [viewerURL, site.guestBase + "/tab-a.html", pagesURL, run.appliance.adminKey ?? "", run.directory])
        #expect(walk["error"] == nil, "\(walk)")
        let pages = walk["pages"] as? [[String: Any]] ?? []
        func tabs(_ suffix: String) -> [Int] { pages.filter { ($0["url"] as? String ?? "").hasSuffix(suffix) }.compactMap { $0["tab"] as? Int } }
        let firstTab = pages.filter { page in !["/tab-b.html", "/tab-c.html"].contains { (page["url"] as? String ?? "").hasSuffix($0) } }
        #expect(firstTab.allSatisfy { $0["tab"] as? Int == 1 }, "the homepage and the clipboard pages in the first tab: \(pages)")
        #expect(tabs("/tab-a.html") == [1], "typed into the first tab's address bar: \(pages)")
        #expect(tabs("/tab-b.html") == [2, 2], "B opened in a new tab, and shown again by Back: \(pages)")
        #expect(tabs("/tab-c.html") == [2], "\(pages)")
        let agent = try await api.json("/v1/vms/\(vmId)/agent") as! [String: Any]
        #expect(agent["tabs"] as? Int == 2, "\(agent)")

        // A release closes every tab; a kiosk batch then shows its page on the whole screen,
        // where the full browser keeps its bars above it.
        _ = try await api.postOK("/release/\(worker)")
        try await eventually("the worker's VM is idle again", timeout: 600) {
            (try await api.json("/v1/vms/\(vmId)") as! [String: Any])["state"] as? String == "idle"
        }
        #expect((try await api.json("/v1/vms/\(vmId)/agent") as! [String: Any])["tabs"] as? Int == 1)
        let kiosk = try await api.postJSON("/v1/batches", ["size": 1, "homepage": site.guestBase + "/tab-c.html", "browser": "kiosk"]) as! [String: Any]
        #expect(kiosk["browser"] as? String == "kiosk")
        let full = try await api.postJSON("/v1/batches", ["size": 1, "homepage": site.guestBase + "/tab-c.html"]) as! [String: Any]
        #expect(full["browser"] as? String == "full")
        let kioskHandle = try await api.postOK("/lock/\(kiosk["id"] as! Int)")
        let fullHandle = try await api.postOK("/lock/\(full["id"] as! Int)")
        var domains: [String: String] = [:]
        try await eventually("both pages are shown", timeout: 600) {
            for handle in [kioskHandle, fullHandle] where domains[handle] == nil {
                let status = try await api.handleStatus(handle)
                let pages = try await api.json("/v1/handles/\(handle)/pages") as? [[String: Any]] ?? []
                if status["assigned"] as? Bool == true, pages.contains(where: { ($0["url"] as? String ?? "").hasSuffix("/tab-c.html") }) {
                    domains[handle] = (status["vm"] as? [String: Any])?["domain"] as? String
                }
            }
            return domains.count == 2
        }
        let kioskShare = try screenShare(domain: domains[kioskHandle]!, color: "c06030", directory: run.directory)
        let fullShare = try screenShare(domain: domains[fullHandle]!, color: "c06030", directory: run.directory)
        print("page colour on screen: kiosk \(kioskShare), full browser \(fullShare)")
        #expect(kioskShare > 0.97, "the kiosk shows the page alone: \(kioskShare)")
        #expect(fullShare > 0.5 && fullShare < 0.95, "the full browser shows its bars above the page: \(fullShare)")
    }
}
