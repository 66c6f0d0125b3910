import Foundation
import Testing

/// `/metrics` of the real binary over a real TCG guest: it parses with Prometheus' own text
/// parser (prometheus_client), needs the admin key, and its figures follow a scenario (a boot,
/// a lock, a viewer session, an audio listener, a release and its reset).
@Suite(.serialized) struct MetricsTests {
    struct Scrape {
        let families: [String: String]
        let samples: [String: Double]

        func value(_ sample: String) -> Double { samples[sample] ?? -1 }
    }

    static func scrape(_ run: ApplianceRun) async throws -> Scrape {
        let (status, body) = try await run.api.get("/metrics")
        #expect(status == 200)
        let file = run.directory + "/metrics-\(UUID().uuidString).txt"
        try body.write(to: URL(fileURLWithPath: file))
        let parsed = try runJSONScript("metrics_parse.py", [file])
        return Scrape(families: parsed["families"] as! [String: String],
                      samples: (parsed["samples"] as! [String: Any]).mapValues { ($0 as! NSNumber).doubleValue })
    }

    @Test(.timeLimit(.minutes(5))) func metricsFollowTheScenario() async throws {
        try await withAppliance("metrics") { run in
            let api = run.api
            let (anonymous, _) = try await api.with(key: nil).get("/metrics")
            #expect(anonymous == 401, "the figures are the operator's")

            #expect(try await api.postOK("/set-pool-size/1/1/0") == "")
            try await eventually("an idle VM", timeout: 120) {
                try await run.live().filter { $0["state"] as? String == "idle" }.count == 1
            }
            let before = try await Self.scrape(run)
            for (family, type) in [
                "vmcloud_vms": "gauge", "vmcloud_boot_duration_seconds": "histogram", "vmcloud_reset_duration_seconds": "histogram",
                "vmcloud_lock_duration_seconds": "histogram", "vmcloud_handle_wait_seconds": "histogram", "vmcloud_handles_waiting": "gauge",
                "vmcloud_jobs": "gauge", "vmcloud_bridge_bytes": "counter", "vmcloud_bridge_sessions": "counter",
                "vmcloud_audio_bytes": "counter", "vmcloud_audio_sessions": "counter", "vmcloud_libvirt_errors": "counter",
                "vmcloud_reconcile_passes": "counter",
            ] {
                #expect(before.families[family] == type, "\(family): \(before.families[family] ?? "missing")")
            }
            #expect(before.value("vmcloud_vms{state=idle}") == 1)
            #expect(before.value("vmcloud_vms{state=locked}") == 0)
            #expect(before.value("vmcloud_boot_duration_seconds_count{}") == 1, "one boot")
            #expect(before.value("vmcloud_boot_duration_seconds_sum{}") > 0.5, "a TCG boot takes seconds")
            #expect(before.value("vmcloud_reconcile_passes_total{loop=pool}") > 0)
            #expect(before.value("vmcloud_reconcile_passes_total{loop=machines}") > 0)

            // A worker's session: lock, watch the screen, listen to the audio, release.
            let batch = try await api.postOK("/prepare-batch/1/http%3A%2F%2Fexample.test%2F")
            let handle = try await api.postOK("/lock/\(batch)")
            var viewer: [String: String] = [:]
            var vm = 0
            try await eventually("the handle assigned", timeout: 60) {
                let status = try await api.handleStatus(handle)
                guard status["assigned"] as? Bool == true, let id = status["vmid"] as? Int,
                      let urls = (status["vm"] as? [String: Any])?["viewer"] as? [String: String] else { return false }
                (vm, viewer) = (id, urls)
                return true
            }
            let waiting = try await Self.scrape(run)
            #expect(waiting.value("vmcloud_vms{state=locked}") == 1)
            #expect(waiting.value("vmcloud_lock_duration_seconds_count{}") == before.value("vmcloud_lock_duration_seconds_count{}") + 1)
            #expect(waiting.value("vmcloud_handle_wait_seconds_count{}") == before.value("vmcloud_handle_wait_seconds_count{}") + 1)

            let token = ViewerBridgeTests.token(viewer["url"]!)
            _ = try await RFBViewer.session(ViewerBridgeTests.socketURL(run, vm: vm, token: token)) { stream in
                let server = try await stream.handshake()
                try await stream.requestUpdate(incremental: false, width: server.width, height: server.height)
                return try await stream.readFramebufferUpdate(bitsPerPixel: server.bitsPerPixel)
            }
            let audio = try lastLineJSON(
                try await runScriptWithoutBlocking("audio_listen.py", [viewer["audioUrl"]!, "2", run.directory + "/audio.ogg"]),
                from: "audio_listen.py")
            #expect((audio["bytes"] as? Int ?? 0) > 0, "\(audio)")

            #expect(try await api.postOK("/release/\(handle)") == "")
            try await eventually("the VM idle again", timeout: 60) {
                try await run.live().filter { $0["state"] as? String == "idle" }.count == 1
            }
            let after = try await Self.scrape(run)
            #expect(after.value("vmcloud_vms{state=idle}") == 1)
            #expect(after.value("vmcloud_vms{state=locked}") == 0)
            #expect(after.value("vmcloud_reset_duration_seconds_count{}") == before.value("vmcloud_reset_duration_seconds_count{}") + 1)
            #expect(after.value("vmcloud_bridge_sessions_total{}") == before.value("vmcloud_bridge_sessions_total{}") + 1)
            #expect(after.value("vmcloud_bridge_sessions_active{}") == 0)
            let framebuffer = after.value("vmcloud_bridge_bytes_total{direction=to_browser}") - before.value("vmcloud_bridge_bytes_total{direction=to_browser}")
            #expect(framebuffer > 10_000, "a full framebuffer update went to the viewer: \(framebuffer) bytes")
            #expect(after.value("vmcloud_bridge_bytes_total{direction=to_vm}") > before.value("vmcloud_bridge_bytes_total{direction=to_vm}"))
            #expect(after.value("vmcloud_audio_sessions_total{transport=http}") == before.value("vmcloud_audio_sessions_total{transport=http}") + 1)
            let audioBytes = after.value("vmcloud_audio_bytes_total{transport=http}") - before.value("vmcloud_audio_bytes_total{transport=http}")
            #expect(audioBytes >= Double(audio["bytes"] as? Int ?? 0), "the relay counted what the listener got: \(audioBytes)")
            #expect(after.value("vmcloud_reconcile_passes_total{loop=pool}") > before.value("vmcloud_reconcile_passes_total{loop=pool}"))
            #expect(after.value("vmcloud_handles_waiting{}") == 0)
            #expect(after.value("vmcloud_boot_duration_seconds_count{}") == 1, "the reset reused the VM: no new boot")
        }
    }
}
