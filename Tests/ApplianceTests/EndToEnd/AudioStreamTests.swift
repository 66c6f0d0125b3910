import AudioRelay
import AudioTestSupport
import Foundation
import Logging
import OggOpus
import Synchronization
import Testing
import WSClient

/// The audio relay through the real binary with booted test VMs: a tone played into a VM's
/// sink reaches HTTP (Ogg/Opus) and WebSocket listeners, ten listeners keep flowing beside a
/// stalled one, and release ends the streams and the tokens. The tone is played into the sink
/// from the host (`paplay`): these are the relay's own tests. The whole path from inside a guest
/// (Chromium, the guest's PulseAudio, its HDA card, QEMU, the sink) is RealBrowserTests' audio step.
@Suite(.serialized) struct AudioStreamTests {
    /// What one WebSocket listener received.
    final class Received: Sendable {
        let hello = Mutex<String?>(nil)
        let packets = Mutex<[AudioPacket]>([])
        let closedAt = Mutex<Date?>(nil)
    }

    /// Listens on `url` for `seconds` (or until the server closes); returns what arrived and the
    /// close frame.
    static func listenWebSocket(_ url: String, seconds: Double) async throws -> (Received, WebSocketCloseFrame?) {
        let received = Received()
        var config = WebSocketClientConfiguration()
        config.closeTimeout = .seconds(2)
        let close = try await WebSocketClient.connect(url: url, configuration: config, logger: Logger(label: "audio-ws")) { inbound, outbound, _ in
            let reader = Task {
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    switch message {
                    case .text(let text): received.hello.withLock { $0 = text }
                    case .binary(let buffer):
                        if let packet = AudioPacket(wireMessage: Array(buffer: buffer), samplesPerChannel: 480) {
                            received.packets.withLock { $0.append(packet) }
                        }
                    }
                }
                received.closedAt.withLock { $0 = Date() }
            }
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, received.closedAt.withLock({ $0 }) == nil {
                try await Task.sleep(for: .milliseconds(20))
            }
            if received.closedAt.withLock({ $0 }) == nil { try await outbound.close(.normalClosure, reason: nil) }
            _ = await reader.result
        }
        return (received, close)
    }

    /// audio_listen.py, awaited without holding a thread; its output.
    static func listenHTTP(_ arguments: [String]) -> Task<String, Error> {
        Task { try await runScriptWithoutBlocking("audio_listen.py", arguments) }
    }


    static func decode(_ packets: [AudioPacket]) throws -> DecodedWAV {
        let stream = try OggOpusStream(preSkip: 0)
        var file = stream.headerPages
        for packet in packets { file += try stream.pages(for: packet.opus) }
        return try decodeWithOpusdec(file + stream.finish()).wav
    }

    struct AudioLinks {
        let handle: String
        let vm: Int
        let domain: String
        let http: String
        let ws: String
        var token: String { String(http.split(separator: "/").last!) }
    }

    static func audioLinks(_ run: ApplianceRun, _ locked: ViewerBridgeTests.Locked) async throws -> AudioLinks {
        let status = try await run.api.handleStatus(locked.handle)
        let vm = try #require(status["vm"] as? [String: Any])
        let viewer = try #require(vm["viewer"] as? [String: String])
        return AudioLinks(handle: locked.handle, vm: locked.vm, domain: try #require(vm["domain"] as? String),
                          http: try #require(viewer["audioUrl"]), ws: try #require(viewer["audioWsUrl"]))
    }

    @Test func toneReachesListenersAndReleaseEndsStreams() async throws {
        try await withAppliance("audio") { run in
            let locked = try await ViewerBridgeTests.lockTwo(run)
            let a = try await Self.audioLinks(run, locked[0])
            let b = try await Self.audioLinks(run, locked[1])
            #expect(a.http == run.appliance.baseURL + "/audio/\(a.token)")
            #expect(a.ws == "ws://127.0.0.1:\(run.appliance.port)/audio/\(a.token)/ws")
            let socket = run.appliance.stateDir + "/audio/native"

            // A 1 kHz tone played into VM a's sink reaches an HTTP and a WebSocket listener.
            let oggFile = run.directory + "/a.opus"
            let http = Self.listenHTTP([a.http, "5", oggFile])
            let ws = Task { try await Self.listenWebSocket(a.ws, seconds: 8) }
            // Both listeners really receiving before the tone (Python may be slow to start).
            try await eventually("the HTTP listener receives audio", timeout: 10) {
                ((try? FileManager.default.attributesOfItem(atPath: oggFile)[.size] as? Int) ?? 0) > 500
            }
            try await Task.sleep(for: .milliseconds(300))
            let played = try await paplay(wav: sineWAV(frequency: 1000, seconds: 1.5), socketPath: socket, sink: a.domain, directory: run.directory)
            #expect(played == 0, "paplay into \(a.domain) exited \(played)")
            let httpResult = try lastLineJSON(await http.value, from: "audio_listen.py")
            #expect(httpResult["status"] as? Int == 200, "\(httpResult)")
            let fromHTTP = try decodeWithOpusdec([UInt8](Data(contentsOf: URL(fileURLWithPath: oggFile)))).wav
            #expect(dominantFrequency(fromHTTP) == 1000)
            let httpTone = toneSeconds(fromHTTP, frequency: 1000)
            #expect(abs(httpTone - 1.5) < 0.15, "HTTP: \(httpTone) s of tone in \(fromHTTP.seconds) s")
            #expect(fromHTTP.seconds > 3, "the stream kept flowing through the silence: \(fromHTTP.seconds) s")

            let (received, _) = try await ws.value
            let packets = received.packets.withLock { $0 }
            let hello = try #require(received.hello.withLock { $0 })
            #expect(hello.contains("\"codec\":\"opus\""), "\(hello)")
            #expect(zip(packets, packets.dropFirst()).allSatisfy { $1.sequence == $0.sequence + 1 && $1.captureMicros > $0.captureMicros })
            let fromWS = try Self.decode(packets)
            #expect(dominantFrequency(fromWS) == 1000)
            let wsTone = toneSeconds(fromWS, frequency: 1000)
            #expect(abs(wsTone - 1.5) < 0.15, "WebSocket: \(wsTone) s of tone in \(fromWS.seconds) s")
            print("audio: HTTP \(httpTone) s, WebSocket \(wsTone) s of a 1.5 s tone")

            // Ten listeners and a stalled eleventh: the ten get continuous audio.
            let stalled = Self.listenHTTP(["--stall", a.http, "4"])
            let ten = (0..<10).map { _ in Task { try await Self.listenWebSocket(a.ws, seconds: 3) } }
            for listener in ten {
                let packets = try await listener.value.0.packets.withLock { $0 }
                #expect(packets.count >= 250, "\(packets.count) packets in 3 s")
                let gaps = zip(packets, packets.dropFirst()).filter { $1.sequence != $0.sequence + 1 }.count
                #expect(gaps == 0, "\(gaps) gaps")
            }
            _ = try await stalled.value

            // Release: open HTTP and WebSocket streams end within a second, the token is dead,
            // the other handle's audio still plays.
            let releasedFile = run.directory + "/released.opus"
            let httpOpen = Self.listenHTTP([a.http, "10", releasedFile])
            let wsOpen = Task { try await Self.listenWebSocket(a.ws, seconds: 10) }
            // Both streams really open (Python may take a while to start on a busy machine).
            try await eventually("the HTTP listener receives audio", timeout: 10) {
                ((try? FileManager.default.attributesOfItem(atPath: releasedFile)[.size] as? Int) ?? 0) > 1000
            }
            try await Task.sleep(for: .milliseconds(300))
            let released = Date()
            #expect(try await run.api.postOK("/release/\(a.handle)") == "")
            let (wsAfter, close) = try await wsOpen.value
            let wsSeconds = try #require(wsAfter.closedAt.withLock { $0 }).timeIntervalSince(released)
            #expect(wsSeconds < 1, "WebSocket closed \(wsSeconds) s after the release")
            #expect(close?.closeCode == .unknown(4001), "\(String(describing: close))")
            let httpAfter = try lastLineJSON(await httpOpen.value, from: "audio_listen.py")
            #expect(httpAfter["ended_by_server"] as? Bool == true, "\(httpAfter)")
            let httpSeconds = Date().timeIntervalSince(released)
            #expect(httpSeconds < 1.5, "HTTP stream ended \(httpSeconds) s after the release (includes the script's exit)")
            print("audio: WebSocket closed \(String(format: "%.3f", wsSeconds)) s, HTTP ended within \(String(format: "%.3f", httpSeconds)) s after the release")
            #expect(try await run.api.get("/audio/\(a.token)").0 == 401)
            #expect(try await run.api.get("/audio/\(b.token)/player").0 == 200)
            let (other, _) = try await Self.listenWebSocket(b.ws, seconds: 1)
            #expect(other.packets.withLock { $0.count } > 50)
            // An audio token never opens the screen.
            #expect(try await run.api.get("/v1/vms/\(b.vm)/vnc?token=\(b.token)").0 == 403)

            // PulseAudio killed under the running appliance: no VM is lost, the relay brings a
            // daemon back with the VM's sink, and the handle's audio streams again.
            let before = try await run.live().count
            _ = try runTool("/usr/bin/pkill", ["-KILL", "-f", "socket=\(socket)"])
            try await eventually("audio streams again after PulseAudio was killed", timeout: 30) {
                let (again, _) = try await Self.listenWebSocket(b.ws, seconds: 1)
                return again.packets.withLock { $0.count } > 50
            }
            #expect(try await run.live().count == before, "no VM lost")
            #expect(try await run.api.handleStatus(b.handle)["assigned"] as? Bool == true)
            let tone = try await paplay(wav: sineWAV(frequency: 1000, seconds: 0.5), socketPath: socket, sink: b.domain, directory: run.directory)
            #expect(tone == 0, "VM b's sink exists in the new daemon")
        }
    }
}
