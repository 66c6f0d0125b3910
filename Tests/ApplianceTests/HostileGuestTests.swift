import AgentProtocol
import Foundation
import Hummingbird
import HummingbirdTesting
import Libvirt
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// A guest that sends oversized, malformed and out-of-order messages: each is rejected and
/// recorded, nothing of it is stored, and the appliance keeps serving the other VM (and this
/// one). The pool runs on libvirt's test driver; the guests are FakeGuests on the agent sockets.
@Suite struct HostileGuestTests {
    @Test func badGuestMessagesAreRejectedAndOtherVMsKeepWorking() async throws {
        let harness = try await APIHarness()
        let store = harness.pool.store
        let hypervisor = harness.pool.hypervisor

        // Two VMs whose domains exist (test driver) and whose guests listen on their sockets.
        var guests: [Int64: FakeGuest] = [:]
        var ids: [Int64] = []
        for _ in 0..<2 {
            let vm = try await store.insertPendingVM(domainPrefix: hypervisor.domainPrefix)
            try await store.transition(vm: vm.id!, .domainStarted)
            try await harness.createTestDomain(for: vm)
            guests[vm.id!] = try FakeGuest(socketPath: hypervisor.state.agentSocket(vm: vm.id!))
            ids.append(vm.id!)
        }
        let (hostile, good) = (ids[0], ids[1])
        defer { guests.values.forEach { $0.close() } }

        await harness.engine.pass()
        try await eventually("both guests said hello", timeout: 10) {
            try await store.vms().allSatisfy { $0.state == .idle }
        }

        // The hostile guest's repertoire.
        let evil = guests[hostile]!
        // A hello that claims a neighbour's address: the host keeps its own record.
        evil.send(AgentMessage(type: .hello, agentVersion: "evil", ip: "192.168.122.2"))
        evil.send("this is not json")
        evil.send(String(repeating: "x", count: 70_000))
        evil.send(#"{"v":99,"type":"hello"}"#)
        evil.send(#"{"v":1,"type":"configure","homepage":"http://x/"}"#)
        evil.send(AgentMessage(type: .blob, page: 1, part: .screenshot, offset: 0, data: "AAAA", final: true))
        evil.send(AgentMessage(type: .page, url: "http://evil/", title: "", page: 2, time: 0, screenshotBytes: 3, mhtmlBytes: 0))
        evil.send(AgentMessage(type: .blob, page: 2, part: .screenshot, offset: 1, data: "AAAA", final: true))
        evil.send(AgentMessage(type: .page, url: "http://evil/", title: "", page: 3, time: 0, screenshotBytes: Int.max, mhtmlBytes: 0))
        evil.send(AgentMessage(type: .pong, id: 12345))

        try await eventually("the rejections are recorded", timeout: 10) {
            try await store.events(vm: hostile).filter { $0.kind == "agent.rejected" }.count >= 8
        }
        #expect(try await store.vm(hostile)?.ip == "10.0.2.15", "the guest's claimed address was not recorded")
        let reasons = try await store.events(vm: hostile).filter { $0.kind == "agent.rejected" }.map(\.message).joined(separator: "\n")
        for expected in ["malformed", "exceeds", "unsupported protocol version", "configure needs an id", "never announced", "offset", "screenshotBytes", "unexpected unsolicited pong"] {
            #expect(reasons.contains(expected), "no rejection mentions '\(expected)':\n\(reasons)")
        }

        // The good guest's page is stored and served; nothing of the hostile guest's is.
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]
        let mhtml = Array("MIME-Version: 1.0\r\n\r\ngood page".utf8)
        let polite = guests[good]!
        polite.send(AgentMessage(type: .page, url: "http://good.test/", title: "Good", page: 1, time: 1, screenshotBytes: png.count, mhtmlBytes: mhtml.count))
        polite.send(AgentMessage(type: .blob, page: 1, part: .screenshot, offset: 0, data: Data(png).base64EncodedString(), final: true))
        polite.send(AgentMessage(type: .blob, page: 1, part: .mhtml, offset: 0, data: Data(mhtml).base64EncodedString(), final: true))
        try await eventually("the good page is stored", timeout: 10) {
            try await store.pool.read { db in try PageRecord.fetchCount(db) } == 1
        }
        let pages = try await store.pool.read { db in try PageRecord.fetchAll(db) }
        #expect(pages.map(\.vmId) == [good])

        // Both VMs still answer through their agents, and the API serves the page.
        for id in [hostile, good] {
            let state = try await harness.pool.agentState(vm: id)
            #expect(state.ip == "10.0.2.15")
        }
        #expect(try await store.vms().allSatisfy { $0.state == .idle })
        let pageId = pages[0].id!
        for vm in try await store.vms() { _ = try await harness.libvirt.destroyDomain(name: vm.domainName) }
        try await harness.test { client in
            try await client.execute(uri: "/v1/pages/\(pageId)/screenshot.png", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Array(response.body.readableBytesView) == png)
            }
            try await client.execute(uri: "/v1/pages/\(pageId)/page.mhtml", method: .get) { response in
                #expect(String(buffer: response.body).contains("good page"))
            }
        }
    }
}
