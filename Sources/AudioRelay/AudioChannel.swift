import Foundation
import OggOpus
import Synchronization

/// One VM's audio: captures its sink's monitor while anyone listens, encodes it once with Opus
/// and hands every packet to all listeners.
///
/// Capture starts with the first listener and stops with the last. Encoding runs in the capture
/// callback on libpulse's thread (never an event loop), one 10 ms frame at a time. Each
/// listener gets its own bounded queue that keeps the newest packets: a listener that cannot
/// keep up skips packets (counted in `skippedPackets`), and neither delays the others nor grows
/// memory.
public final class AudioChannel: Sendable {
    public let sinkName: String
    /// Packets a listener may have queued before it starts skipping (0.5 s of audio).
    public static let listenerQueuePackets = 50
    /// Listeners one VM may have at once: each costs a queue and a mux per packet.
    public static let maxListeners = 64

    public struct ListenerLimitReached: Error, CustomStringConvertible {
        public var description: String { "this VM already has \(AudioChannel.maxListeners) audio listeners" }
    }

    private let connection: PulseConnection
    private let frameDuration: OpusEncoder.FrameDuration
    private let bitrate: Int
    private let state: Mutex<State>

    /// A listener's packets; ends when the channel's sink goes away or the relay shuts down.
    public typealias Packets = AsyncStream<AudioPacket>

    /// One listener: its packets, and the way to stop listening from outside the loop that
    /// reads them (e.g. when its access is revoked).
    public struct Subscription: Sendable {
        public let packets: Packets
        fileprivate let continuation: Packets.Continuation

        /// Ends `packets` (the reading loop sees the end after what is queued).
        public func cancel() { continuation.finish() }
    }

    private struct State: ~Copyable {
        var listeners: [UInt64: Packets.Continuation] = [:]
        var nextListener: UInt64 = 0
        var run: CaptureRun?
        var sequence: UInt64 = 0
        var lastCaptureMicros: Int64 = 0
        var skippedPackets: Int = 0
        var encodedPackets: Int = 0
    }

    /// One capture from start to stop: the record stream, its encoder and the silence timer.
    /// Its mutable parts are only touched with `state` locked.
    private final class CaptureRun: @unchecked Sendable {
        let capture: PulseCapture
        let filler: DispatchSourceTimer
        var encoding: Encoding

        init(capture: PulseCapture, filler: DispatchSourceTimer, encoding: Encoding) {
            self.capture = capture
            self.filler = filler
            self.encoding = encoding
        }

        func stop() {
            filler.cancel()
            capture.stop()
        }
    }

    private struct Encoding {
        let encoder: OpusEncoder
        var framer: PCMFramer
        /// Frames (one sample per channel) framed from captured audio since the run started.
        var emittedFrames: UInt64 = 0
        /// Audio published in this run (captured or filled), in microseconds of stream time.
        var producedMicros: Int64 = 0
        /// When captured audio last arrived (wall clock, µs).
        var lastArrivalMicros: Int64 = 0
        /// The run's clock origin, on the wall clock and on the monotonic clock.
        let wallOffsetMicros: Int64
        let continuousOrigin: ContinuousClock.Instant
    }

    init(sinkName: String, connection: PulseConnection, frameDuration: OpusEncoder.FrameDuration = .ms10,
         bitrate: Int = 64_000) {
        self.sinkName = sinkName
        self.connection = connection
        self.frameDuration = frameDuration
        self.bitrate = bitrate
        preSkip = (try? OpusEncoder(bitrate: bitrate, frameDuration: frameDuration).lookahead) ?? 0
        state = Mutex(State())
    }

    /// The samples per channel of every packet.
    public var samplesPerChannel: Int { frameDuration.samplesPerChannel }
    /// The encoder's lookahead in samples: an Ogg stream's pre-skip.
    public let preSkip: Int

    public var listenerCount: Int { state.withLock { $0.listeners.count } }
    public var isCapturing: Bool { state.withLock { $0.run != nil } }
    /// Packets dropped from slow listeners' queues, over the channel's life.
    public var skippedPackets: Int { state.withLock { $0.skippedPackets } }
    /// Packets encoded over the channel's life.
    public var encodedPackets: Int { state.withLock { $0.encodedPackets } }

    /// Adds a listener; capture starts if it is the first. Stop listening with `cancel()`, by
    /// leaving the loop over `packets` or by cancelling the task that runs it.
    /// - Throws: `ListenerLimitReached` when the VM already has `maxListeners`.
    /// - Parameter queuePackets: how many packets may wait for this listener before it skips.
    public func listen(queuePackets: Int = listenerQueuePackets) throws -> Subscription {
        let (stream, continuation) = Packets.makeStream(bufferingPolicy: .bufferingNewest(max(1, queuePackets)))
        let (id, toStart) = try state.withLock { state -> (UInt64, CaptureRun?) in
            guard state.listeners.count < Self.maxListeners else { throw ListenerLimitReached() }
            state.nextListener += 1
            state.listeners[state.nextListener] = continuation
            return (state.nextListener, state.run == nil ? makeRun(&state) : nil)
        }
        // AsyncStream runs this with its own lock held, and the capture thread holds `state`
        // while it yields into that stream: take `state` on another thread, never in here.
        continuation.onTermination = { [weak self] _ in
            Task { self?.removeListener(id) }
        }
        if let toStart { start(toStart) }
        return Subscription(packets: stream, continuation: continuation)
    }

    /// Restarts capture after the sink came back (PulseAudio restarted) if anyone listens.
    func resume() {
        let toStart = state.withLock { state -> CaptureRun? in
            state.run == nil && !state.listeners.isEmpty ? makeRun(&state) : nil
        }
        if let toStart { start(toStart) }
    }

    /// Ends every listener and the capture (the VM is gone or the relay shuts down).
    func close() {
        let (run, listeners) = state.withLock { state in
            defer { state.run = nil; state.listeners = [:] }
            return (state.run, Array(state.listeners.values))
        }
        run?.stop()
        listeners.forEach { $0.finish() }
    }

    private func removeListener(_ id: UInt64) {
        let toStop = state.withLock { state -> CaptureRun? in
            state.listeners.removeValue(forKey: id)
            guard state.listeners.isEmpty else { return nil }
            defer { state.run = nil }
            return state.run
        }
        toStop?.stop()
    }

    private func makeRun(_ state: inout State) -> CaptureRun? {
        guard let encoder = try? OpusEncoder(bitrate: bitrate, frameDuration: frameDuration) else { return nil }
        let capture = PulseCapture(connection: connection, sinkName: sinkName, fragment: .microseconds(Int64(frameMicros))) { [weak self] event in
            self?.handle(event)
        }
        let filler = DispatchSource.makeTimerSource(queue: Self.fillerQueue)
        let run = CaptureRun(capture: capture, filler: filler, encoding: Encoding(
            encoder: encoder,
            framer: PCMFramer(samplesPerChannel: frameDuration.samplesPerChannel, channels: AudioFormat.channels),
            wallOffsetMicros: Self.wallMicros(), continuousOrigin: ContinuousClock.now))
        filler.setEventHandler { [weak self] in self?.fillSilence() }
        filler.schedule(deadline: .now() + .milliseconds(frameMicros / 1000), repeating: .milliseconds(frameMicros / 1000))
        state.run = run
        return run
    }

    private func start(_ run: CaptureRun) {
        run.filler.resume()
        Task {
            do {
                try await run.capture.start()
            } catch {
                // The sink is missing or PulseAudio is away: this run is over; listeners stay and
                // `resume()` tries again once the relay has the sink back.
                let ended = state.withLock { state -> Bool in
                    guard state.run === run else { return false }
                    state.run = nil
                    return true
                }
                if ended { run.stop() }
            }
        }
    }

    /// Runs on libpulse's thread for every captured chunk of the current capture.
    private func handle(_ event: PulseCapture.Event) {
        switch event {
        case .ended:
            let run = state.withLock { state in
                defer { state.run = nil }
                return state.run
            }
            run?.filler.cancel()
        case .chunk(let chunk):
            state.withLock { state in
                guard let run = state.run else { return }
                let samples = frameDuration.samplesPerChannel
                let now = Self.wallMicros()
                run.encoding.lastArrivalMicros = now
                // The stream may run ahead of the clock by a little (capture jitter) but not by
                // a lump: an idle null sink renders a second or two of digital silence at once,
                // for a time the silence filler has already covered. Such excess silence is
                // dropped; sound never is (it follows such a lump when playback starts).
                let allowed = now - run.encoding.wallOffsetMicros + Self.maxAheadMicros
                for pcm in run.encoding.framer.frames(appending: chunk.pcm) {
                    // Where this frame's first sample sits relative to the chunk's first sample
                    // (negative when part of it came in an earlier chunk): the frame's time.
                    let offset = Int64(run.encoding.emittedFrames) - Int64(chunk.frameIndex)
                    run.encoding.emittedFrames += UInt64(samples)
                    let instant = chunk.captureTime + .microseconds(offset * 1_000_000 / Int64(AudioFormat.sampleRate))
                    let micros = run.encoding.wallOffsetMicros + Self.micros(instant - run.encoding.continuousOrigin)
                    if run.encoding.producedMicros + Int64(frameMicros) > allowed, pcm.allSatisfy({ $0 == 0 }) { continue }
                    publish(pcm, at: micros, run: run, &state)
                }
            }
        }
    }

    /// A null sink that nothing plays into delivers nothing at all (not silence), e.g. a VM
    /// whose sound card is idle. Players give up on a stream that stalls, so when no audio has
    /// arrived for three frames this sends silent frames until the stream has caught up with the
    /// clock.
    private func fillSilence() {
        state.withLock { state in
            guard let run = state.run, run.encoding.framer.bufferedFrames == 0, run.encoding.framer.partialBytes == 0 else { return }
            let now = Self.wallMicros()
            let frame = Int64(frameMicros)
            guard now - run.encoding.lastArrivalMicros > 3 * frame else { return }
            let silence = [Int16](repeating: 0, count: frameDuration.samplesPerChannel * AudioFormat.channels)
            let elapsed = now - run.encoding.wallOffsetMicros
            while run.encoding.producedMicros + frame <= elapsed {
                publish(silence, at: run.encoding.wallOffsetMicros + run.encoding.producedMicros, run: run, &state)
            }
        }
    }

    /// Encodes one frame captured at `micros` and hands the packet to every listener.
    private func publish(_ pcm: [Int16], at micros: Int64, run: CaptureRun, _ state: inout State) {
        run.encoding.producedMicros += Int64(frameMicros)
        guard let opus = try? run.encoding.encoder.encode(pcm: pcm) else { return }
        let stamp = max(micros, state.lastCaptureMicros + 1)
        state.lastCaptureMicros = stamp
        let packet = AudioPacket(sequence: state.sequence, captureMicros: stamp,
                                 samplesPerChannel: frameDuration.samplesPerChannel, opus: opus)
        state.sequence += 1
        state.encodedPackets += 1
        for listener in state.listeners.values {
            if case .dropped = listener.yield(packet) { state.skippedPackets += 1 }
        }
    }

    /// How far captured audio may run ahead of the clock before it counts as a stale lump.
    private static let maxAheadMicros: Int64 = 100_000

    private var frameMicros: Int { frameDuration.samplesPerChannel * 1_000_000 / AudioFormat.sampleRate }

    private static let fillerQueue = DispatchQueue(label: "vmcloud.audio.silence")

    private static func wallMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    private static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }
}
