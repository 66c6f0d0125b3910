import ChildProcess
import Foundation
import Testing

/// Capture jobs against pages served by the test, with a pool of 2 real TCG guests: a page
/// that hangs, a VM killed in the middle of a job and a kill -9 of the appliance, and still
/// every job ends done or failed with its reason, none lost, none done twice.
@Suite(.serialized) struct JobQueueTests {
    @Test func jobsSurviveAHangingPageAKilledVMAndARestart() async throws {
        let port = try ApplianceProcess.freePort()
        let host = try NATNetwork.hostAddress()
        let siteDir = try makeTemporaryDirectory("jobsite")
        let hits = siteDir + "/hits.log"
        let site = try ChildProcess(
            executable: "/usr/bin/python3",
            arguments: [URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("job_site.py").path, host, String(port), hits, "8"],
            environment: ["PATH": "/usr/bin:/bin"], outputPath: siteDir + "/site.out")
        defer {
            site.signal(SIGKILL)
            _ = site.waitFor()
            try? FileManager.default.removeItem(atPath: siteDir)
        }
        try await withAppliance("jobs") { run in
            let admin = run.api
            _ = try await admin.postOK("/set-pool-size/2/2/0")
            let registered = try await admin.object("POST", "/v1/clients", ["email": "jobs@example.org"], status: 201)
            let app = admin.with(key: registered["key"] as? String)
            try await eventually("2 idle VMs", timeout: 180) {
                try await run.live().filter { $0["state"] as? String == "idle" }.count == 2
            }

            // 17 quick pages, 2 slow ones (a VM is killed under one of them), 1 that hangs.
            let base = "http://\(host):\(port)"
            var urls = (1...17).map { "\(base)/page/\($0)" }
            urls += ["\(base)/slow/1", "\(base)/slow/2"]
            var ids: [Int64: String] = [:]
            for url in urls {
                let job = try await app.object("POST", "/v1/jobs", ["url": url, "timeoutMs": 40_000, "maxAttempts": 3], status: 201)
                ids[(job["id"] as! NSNumber).int64Value] = url
            }
            let hang = try await app.object("POST", "/v1/jobs", ["url": "\(base)/hang", "timeoutMs": 6000, "maxAttempts": 2], status: 201)
            let hangId = (hang["id"] as! NSNumber).int64Value

            // Kill the QEMU of a VM that is loading a slow page.
            var killedVM: Int64 = 0
            try await eventually("a VM working on a slow page", timeout: 120) {
                let jobs = try await app.send("GET", "/v1/jobs?state=running").1 as? [[String: Any]] ?? []
                guard let slow = jobs.first(where: { ($0["url"] as? String)?.contains("/slow/") == true }),
                      let vm = (slow["vm"] as? NSNumber)?.int64Value else { return false }
                killedVM = vm
                return true
            }
            let domain = try #require(try await run.live().first { ($0["id"] as? NSNumber)?.int64Value == killedVM }?["domain"] as? String)
            _ = try runTool("/usr/bin/pkill", ["-KILL", "-f", "guest=\(domain),"])

            // And the appliance itself, a moment later, while jobs are still queued or running.
            try await Task.sleep(for: .seconds(2))
            let before = try await app.send("GET", "/v1/jobs").1 as? [[String: Any]] ?? []
            #expect(before.contains { $0["state"] as? String != "done" && $0["state"] as? String != "failed" }, "jobs were still pending at the restart")
            run.appliance.kill9()
            try await run.appliance.start()

            var final: [[String: Any]] = []
            try await eventually("every job done or failed", timeout: 420) {
                final = try await app.send("GET", "/v1/jobs").1 as? [[String: Any]] ?? []
                return final.count == 20 && final.allSatisfy { ["done", "failed"].contains($0["state"] as? String ?? "") }
            }

            for (id, url) in ids {
                let job = try await app.object("GET", "/v1/jobs/\(id)")
                let tries = job["tries"] as? [[String: Any]] ?? []
                #expect(job["state"] as? String == "done", "job \(id) \(url): \(job)")
                #expect(tries.filter { $0["outcome"] as? String == "done" }.count == 1, "job \(id) completed exactly once: \(tries)")
                let page = try #require((job["page"] as? NSNumber)?.int64Value, "job \(id) has its page")
                let (status, mhtml) = try await app.request("GET", "/v1/pages/\(page)/page.mhtml")
                let name = url.split(separator: "/").suffix(2).joined(separator: "-")
                #expect(status == 200 && String(decoding: mhtml, as: UTF8.self).contains("job-\(name)-text"), "job \(id)'s MHTML holds its page")
                // A retry never runs on the VM whose try just failed.
                for (failed, next) in zip(tries, tries.dropFirst()) where failed["outcome"] as? String != "interrupted" {
                    #expect(failed["vm"] as? NSNumber != next["vm"] as? NSNumber, "job \(id) retried on another VM: \(tries)")
                }
            }
            let lost = final.compactMap { ($0["id"] as? NSNumber)?.int64Value }
            #expect(Set(lost) == Set(ids.keys).union([hangId]), "no job lost, none duplicated")

            let hung = try await app.object("GET", "/v1/jobs/\(hangId)")
            let hungTries = hung["tries"] as? [[String: Any]] ?? []
            #expect(hung["state"] as? String == "failed")
            #expect((hung["lastError"] as? String)?.hasPrefix("timeout") == true, "\(hung)")
            let counted = hungTries.filter { $0["outcome"] as? String != "interrupted" }
            #expect(counted.count == 2 && Set(counted.compactMap { $0["vm"] as? NSNumber }).count == 2, "two timed-out tries on two VMs: \(hungTries)")

            // The killed VM's try is on the error list as vm_lost.
            let errors = try await app.send("GET", "/v1/jobs/errors").1 as? [[String: Any]] ?? []
            #expect(errors.contains { $0["outcome"] as? String == "vm_lost" && ($0["vm"] as? NSNumber)?.int64Value == killedVM }, "\(errors)")
            #expect(errors.contains { $0["outcome"] as? String == "timeout" && ($0["job"] as? NSNumber)?.int64Value == hangId })

            let me = try await app.object("GET", "/v1/clients/me")
            let stats = try #require(me["stats"] as? [String: Any])
            #expect(stats["jobsDone"] as? Int == 19 && stats["jobsFailed"] as? Int == 1, "\(stats)")
            let perVM = try await admin.send("GET", "/v1/jobs/vms").1 as? [[String: Any]] ?? []
            #expect(perVM.count >= 3, "tries spread over the two first VMs and the replacement: \(perVM)")
            // Every quick page was fetched by a guest at least once (the guest really loaded it).
            let fetched = (try? String(contentsOfFile: hits, encoding: .utf8)) ?? ""
            for n in 1...17 { #expect(fetched.contains(" /page/\(n)\n"), "page \(n) was requested by a guest") }
            // ... from the guests' own addresses on the NAT network.
            let clients = Set(fetched.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
            let subnet = host.split(separator: ".").dropLast().joined(separator: ".") + "."
            #expect(!clients.isEmpty && clients.allSatisfy { $0.hasPrefix(subnet) && $0 != host }, "\(clients)")
        }
    }
}
