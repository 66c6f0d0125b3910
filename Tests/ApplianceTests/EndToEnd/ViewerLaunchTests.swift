import Foundation
import Testing

/// VRun's "exactly one viewer per key": `PUT /v1/viewers/{project}/{kind}` raced by 50 callers
/// with a kill -9 and a restart of the appliance in the middle yields one VM and one domain;
/// the viewer's access key guards GET and DELETE.
@Suite(.serialized) struct ViewerLaunchTests {
    @Test func fiftyConcurrentLaunchesAndARestartMakeOneVM() async throws {
        try await withAppliance("viewers") { run in
            let api = run.api
            _ = try MachineLifecycleTests.stockImageStore(run)
            var body = MachineLifecycleTests.spec("unused")
            for key in ["name", "hypervisor", "sys_arch", "stop_grace", "cpu_count", "hda_image"] { body[key] = nil }
            body["image"] = "test/disk.qcow2"
            body["files"] = ["restore.sql": "CREATE TABLE t (x int);\n", "run.sh": "#!/bin/sh\necho ready\n"]
            body["wait"] = 120
            let path = "/v1/viewers/p1/codedx"

            // 50 callers at once; the appliance is killed while they wait and started again.
            // A caller whose connection died asks again, as a launcher would.
            let bodyData = try JSONSerialization.data(withJSONObject: body)
            let answers = try await withThrowingTaskGroup(of: Launched?.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let body = try JSONSerialization.jsonObject(with: bodyData)
                        for _ in 0..<2 {
                            if let (status, answer) = try? await api.send("PUT", path, body, timeout: 150), status == 200 || status == 202,
                               let object = answer as? [String: Any], let uuid = object["uuid"] as? String, let key = object["access_key"] as? String {
                                return Launched(uuid: uuid, key: key)
                            }
                            try await Task.sleep(for: .seconds(5))
                        }
                        return nil
                    }
                }
                try await Task.sleep(for: .milliseconds(400))
                run.appliance.kill9()
                try await run.appliance.start()
                var all: [Launched] = []
                for try await answer in group { if let answer { all.append(answer) } }
                return all
            }
            #expect(answers.count == 50, "every caller got an answer (after at most one retry)")
            #expect(Set(answers.map(\.uuid)).count == 1, "one VM for the key")
            #expect(Set(answers.map(\.key)).count == 1)

            // Once the guest reported its IP the answer carries it and the URL.
            let ready = try await api.object("PUT", path, body)
            let key = try #require(ready["access_key"] as? String)
            #expect(ready["created"] as? Bool == false)
            let domains = try virshDomainNames(prefix: run.prefix + "m")
            #expect(domains.count == 1, "exactly one domain: \(domains)")
            // The IP is the one dnsmasq leased to the viewer VM's MAC; the URL is on the appliance
            // (ViewerProxyTests opens it).
            let lease = try NATNetwork.leasedIP(mac: try NATNetwork.mac(domain: domains.first!))
            #expect(lease != nil && ready["ip"] as? String == lease, "\(ready) vs lease \(lease ?? "none")")
            #expect(ready["url"] as? String == "\(run.appliance.baseURL)/viewers/p1/codedx/?key=\(key)", "\(ready)")
            let disks = try runTool("/usr/bin/virsh", ["-c", "qemu:///system", "domblklist", domains.first!])
            #expect(disks.contains("input.img"), "the input disk is attached: \(disks)")

            // The access key guards the viewer; its VM is not changed through /v1/vms.
            let uuid = try #require(ready["uuid"] as? String)
            #expect(try await api.send("POST", "/v1/vms/\(uuid)/stop").0 == 409)
            #expect(try await MachineLifecycleTests.status(api, uuid)["name"] as? String == "viewer.p1.codedx")
            #expect(try await api.send("GET", path).0 == 401)
            #expect(try await api.send("GET", path, headers: ["X-Viewer-Key": String(key.reversed())]).0 == 401)
            let status = try await api.object("GET", path + "?key=\(key)")
            #expect(status["uuid"] as? String == ready["uuid"] as? String)
            #expect(try await api.send("DELETE", path).0 == 401)
            _ = try await api.object("DELETE", path, headers: ["X-Viewer-Key": key])
            try await eventually("the viewer's domain is gone", timeout: 30) { try virshDomainNames(prefix: run.prefix + "m").isEmpty }
            #expect(try await api.send("GET", path + "?key=\(key)").0 == 404)
            #expect(try await api.send("PUT", "/v1/viewers/P1/codedx", body).0 == 400, "keys are lowercase")
        }
    }

    struct Launched: Sendable {
        let uuid: String
        let key: String
    }
}
