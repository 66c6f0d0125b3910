import Foundation
import Testing

/// The VNC bridge against booted test VMs through the real binary: RFB over WebSocket to the
/// VM's screen, refusals, view-only enforcement checked inside the guest, and release ending
/// open sessions.
@Suite(.serialized) struct ViewerBridgeTests {
    /// Two VMs locked by two handles, with their viewer links.
    struct Locked {
        let handle: String
        let vm: Int
        let control: String
        let view: String
    }

    static func lockTwo(_ run: ApplianceRun) async throws -> [Locked] {
        let api = run.api
        #expect(try await api.postOK("/set-pool-size/2/2/0") == "")
        let batch = try await api.postOK("/prepare-batch/2/http%3A%2F%2Fexample.test%2F")
        let handles = [try await api.postOK("/lock/\(batch)"), try await api.postOK("/lock/\(batch)")]
        var locked: [Locked] = []
        try await eventually("two handles assigned", timeout: 180) {
            locked = []
            for handle in handles {
                let status = try await api.handleStatus(handle)
                guard status["assigned"] as? Bool == true, let vm = status["vmid"] as? Int,
                      let viewer = (status["vm"] as? [String: Any])?["viewer"] as? [String: String],
                      let control = viewer["url"], let view = viewer["viewUrl"] else { return false }
                locked.append(Locked(handle: handle, vm: vm, control: token(control), view: token(view)))
                #expect(control.hasPrefix(run.appliance.baseURL + "/viewer/\(vm)?token="))
            }
            return true
        }
        return locked
    }

    static func token(_ url: String) -> String { String(url.split(separator: "token=").last!) }

    static func socketURL(_ run: ApplianceRun, vm: Int, token: String) -> String {
        "ws://127.0.0.1:\(run.appliance.port)/v1/vms/\(vm)/vnc?token=\(token)"
    }

    /// Key presses and pointer events the guest kernel has seen, as its agent counts them.
    static func inputCounts(_ run: ApplianceRun, vm: Int) async throws -> (keys: Int, pointer: Int) {
        let agent = try await run.api.json("/v1/vms/\(vm)/agent") as! [String: Any]
        return (agent["keyEvents"] as! Int, agent["pointerEvents"] as! Int)
    }

    /// Handshake, then `keys` key presses and pointer moves, then one full update (which the
    /// VM's VNC server handles after the input that preceded it).
    static func sendInput(_ url: String, keys: Int) async throws {
        _ = try await RFBViewer.session(url) { stream in
            let server = try await stream.handshake()
            for i in 0..<keys {
                try await stream.typeKey(0x61 + UInt32(i % 26))  // a, b, c...
                try await stream.movePointer(x: 10 + 37 * i, y: 10 + 23 * i, buttons: i % 2 == 0 ? 1 : 0)
            }
            try await stream.requestUpdate(incremental: false, width: server.width, height: server.height)
            _ = try await stream.readFramebufferUpdate(bitsPerPixel: server.bitsPerPixel)
        }
    }

    @Test func bridgeToBootedVMs() async throws {
        try await withAppliance("vnc") { run in
            let api = run.api
            let locked = try await Self.lockTwo(run)
            let (a, b) = (locked[0], locked[1])

            // A real RFB session through the bridge reaches VM a's screen.
            let (update, _) = try await RFBViewer.session(Self.socketURL(run, vm: a.vm, token: a.control)) { stream in
                let server = try await stream.handshake()
                try await stream.requestUpdate(incremental: false, width: server.width, height: server.height)
                let pixels = try await stream.readFramebufferUpdate(bitsPerPixel: server.bitsPerPixel)
                return (server, pixels)
            }
            let (server, pixels) = try #require(update)
            #expect(server.width >= 320 && server.height >= 200, "\(server)")
            #expect(pixels == server.width * server.height, "a full update covers the screen")

            // Refused, before any byte reaches a VM: a made-up token, another VM's token.
            let madeUp = String(repeating: "A", count: 43)
            for (token, status) in [(madeUp, 401), (b.control, 403), (b.view, 403), ("short", 401)] {
                await #expect(throws: RFBViewer.Refused.self) {
                    _ = try await RFBViewer.session(Self.socketURL(run, vm: a.vm, token: token)) { _ in
                        Issue.record("a session opened with a bad token")
                    }
                }
                #expect(try await api.get("/v1/vms/\(a.vm)/vnc?token=\(token)").0 == status)
            }
            #expect(try await api.get("/v1/vms/\(a.vm)/vnc?token=\(a.control)").0 == 426, "valid token, but not a WebSocket")

            // noVNC from Debian's package, in headless Chromium, shows the VM's screen: its canvas
            // matches the VM's own screenshot (taken through libvirt), which is not blank.
            let viewerURL = "\(run.appliance.baseURL)/viewer/\(a.vm)?token=\(a.control)"
            let shot = try runJSONScript("novnc_check.py", [viewerURL, "\(run.appliance.baseURL)/v1/vms/\(a.vm)/screenshot.png", run.directory, run.appliance.adminKey ?? ""])
            #expect(shot["error"] == nil, "\(shot)")
            #expect(shot["canvas_size"] as? [Int] == shot["screenshot_size"] as? [Int], "\(shot)")
            #expect(try #require(shot["mean_diff"] as? Double) < 2, "canvas and screenshot differ: \(shot)")
            // A blinking cursor may differ; a blank or wrong screen differs in all its text.
            let differing = try #require(shot["differing_fraction"] as? Double)
            #expect(differing < 0.001, "\(shot)")
            #expect(try #require(shot["screenshot_stddev"] as? Double) > 10, "the VM screen shows something: \(shot)")
            #expect(try #require(shot["black_differing_fraction"] as? Double) > max(0.005, differing * 20), "the comparison tells screens apart: \(shot)")

            // View-only: the guest receives none of the input; control: it does.
            let before = try await Self.inputCounts(run, vm: a.vm)
            try await Self.sendInput(Self.socketURL(run, vm: a.vm, token: a.view), keys: 8)
            try await Task.sleep(for: .seconds(3))
            let afterView = try await Self.inputCounts(run, vm: a.vm)
            #expect(afterView == before, "a view session's input reached the guest: \(before) -> \(afterView)")
            try await Self.sendInput(Self.socketURL(run, vm: a.vm, token: a.control), keys: 8)
            try await eventually("the guest sees the control session's input", timeout: 10) {
                let now = try await Self.inputCounts(run, vm: a.vm)
                return now.keys >= before.keys + 8 && now.pointer > before.pointer
            }

            // Two viewers at once, then release: both are closed within a second.
            let (connected, connectedSignal) = AsyncStream<Void>.makeStream()
            let viewers = [a.control, a.view].map { token in
                Task {
                    try await RFBViewer.session(Self.socketURL(run, vm: a.vm, token: token)) { stream in
                        _ = try await stream.handshake()
                        connectedSignal.yield()
                        _ = try await stream.drainUntilClosed()
                        return Date()
                    }
                }
            }
            var count = 0
            for await _ in connected { count += 1; if count == 2 { break } }
            try await Task.sleep(for: .milliseconds(500))
            let released = Date()
            #expect(try await api.postOK("/release/\(a.handle)") == "")
            for viewer in viewers {
                let (closedAt, close) = try await viewer.value
                let seconds = try #require(closedAt).timeIntervalSince(released)
                #expect(seconds < 1.0, "closed \(seconds) s after the release")
                print("viewer closed \(String(format: "%.3f", seconds)) s after the release")
                #expect(close?.closeCode == .unknown(4001), "\(String(describing: close))")
            }
            // The released handle's tokens are dead; the other handle's still work.
            for token in [a.control, a.view] {
                #expect(try await api.get("/v1/vms/\(a.vm)/vnc?token=\(token)").0 == 401)
            }
            let (other, _) = try await RFBViewer.session(Self.socketURL(run, vm: b.vm, token: b.view)) { try await $0.handshake() }
            #expect(other != nil)

            // Malformed upgrades, WebSocket frames and RFB streams, on both scopes: the appliance
            // stays up and still serves good sessions.
            for (seed, token) in [(1, b.control), (2, b.view)] {
                let fuzz = try runJSONScript("ws_fuzz.py", ["127.0.0.1", "\(run.appliance.port)", "/v1/vms/\(b.vm)/vnc?token=\(token)", "\(seed)", "80"])
                #expect(fuzz["requested"] as? Int == 80 && fuzz["ran"] as? Int == 80, "\(fuzz)")
                let outcomes = fuzz["outcomes"] as? [String: Int] ?? [:]
                // Frames RFC 6455 says a server must fail the connection for: closed (or reset)
                // within 2 s. (Unmasked frames are not closed yet: a known gap, issue 27.)
                let mustClose = ["reserved_opcode", "rsv_bits", "huge_length", "fragmented_control", "long_control", "bad_close", "lonely_continuation"]
                // After a good upgrade the bridge always answers the upgrade (no timeout).
                let badUpgrades = ["no_key", "bad_version", "huge_header", "garbage_request"]
                for key in outcomes.keys {
                    let parts = key.split(separator: ":").map(String.init)
                    let (kind, result) = (parts.first ?? "", parts.last ?? "")
                    if mustClose.contains(kind) { #expect(result == "101+closed" || result == "reset", "\(key)") }
                    if !badUpgrades.contains(kind) { #expect(result != "timeout", "\(key)") }
                }
            }
            #expect(try await api.get("/v1/pool").0 == 200)
            let (afterFuzz, _) = try await RFBViewer.session(Self.socketURL(run, vm: b.vm, token: b.control)) { stream in
                let server = try await stream.handshake()
                try await stream.requestUpdate(incremental: false, width: server.width, height: server.height)
                return try await stream.readFramebufferUpdate(bitsPerPixel: server.bitsPerPixel)
            }
            #expect((afterFuzz ?? 0) > 0)
            #expect(try await api.handleStatus(b.handle)["assigned"] as? Bool == true, "the fuzzed VM is still held")
        }
    }
}
