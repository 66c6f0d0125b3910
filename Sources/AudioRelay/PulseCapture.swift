import CPulse

/// Records a null sink's monitor (`NAME.monitor`) as s16le 48 kHz stereo PCM.
///
/// The record stream asks for a small fragment (10 ms by default) with
/// `PA_STREAM_ADJUST_LATENCY`: a null sink renders at the smallest latency any client asks for,
/// and with an idle VM nobody else asks, so without it the monitor delivers 2-second lumps.
///
/// Chunks are handed to `handler` on libpulse's mainloop thread with the mainloop lock held, in
/// capture order; the handler must copy/enqueue and return (an encoder belongs on another thread
/// or task). Holes in the stream (`pa_stream_peek` giving no data but a length) are delivered as
/// silence of that length so the frame count keeps matching wall-clock time.
///
/// Thread safety: mutable state is guarded by the connection's mainloop lock.
public final class PulseCapture: @unchecked Sendable {
    public struct Chunk: Sendable {
        /// Interleaved s16le stereo frames.
        public let pcm: [UInt8]
        /// Index of the first frame since `start()`: exact, unlike wall-clock times.
        public let frameIndex: UInt64
        /// Estimated moment the first frame entered the sink: the time the chunk was read minus
        /// the stream latency libpulse reports (source latency plus data still buffered).
        public let captureTime: ContinuousClock.Instant
        /// True if PulseAudio reported a hole here and `pcm` is substituted silence.
        public let isSilenceFill: Bool

        public var frameCount: Int { pcm.count / AudioFormat.bytesPerFrame }
    }

    public enum Event: Sendable {
        case chunk(Chunk)
        /// The stream ended on the server's side (sink unloaded, daemon gone); the capture is dead
        /// and a new one must be made after the sink exists again.
        case ended(String)
    }


    public let connection: PulseConnection
    public let sinkName: String
    public let fragment: Duration
    private let handler: @Sendable (Event) -> Void

    // Guarded by the connection's mainloop lock.
    private var stream: OpaquePointer?
    private var startWaiter: CheckedContinuation<Void, Error>?
    private var framesDelivered: UInt64 = 0

    /// - Parameters:
    ///   - fragment: the fragment size asked of the server; it is a request, the server rounds.
    ///   - handler: see the type's documentation: libpulse thread, must not block.
    public init(connection: PulseConnection, sinkName: String, fragment: Duration = .milliseconds(10),
                handler: @escaping @Sendable (Event) -> Void) {
        self.connection = connection
        self.sinkName = sinkName
        self.fragment = fragment
        self.handler = handler
    }

    deinit { stop() }

    /// Connects the record stream; returns when audio starts flowing (stream ready).
    public func start() async throws {
        try PulseConnection.validate(name: sinkName)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            connection.withLock {
                guard stream == nil else {
                    continuation.resume()
                    return
                }
                guard let ctx = connection.readyContext else {
                    continuation.resume(throwing: PulseError.notConnected("\(connection.server): \(connection.state)"))
                    return
                }
                var spec = pa_sample_spec(format: PA_SAMPLE_S16LE, rate: UInt32(AudioFormat.sampleRate),
                                          channels: UInt8(AudioFormat.channels))
                guard let s = pa_stream_new(ctx, "capture \(sinkName)", &spec, nil) else {
                    continuation.resume(throwing: PulseError.setupFailed("pa_stream_new: \(PulseConnection.errorString(ctx))"))
                    return
                }
                let me = Unmanaged.passUnretained(self).toOpaque()
                pa_stream_set_state_callback(s, { s, userdata in
                    guard let s, let userdata else { return }
                    Unmanaged<PulseCapture>.fromOpaque(userdata).takeUnretainedValue().streamStateChanged(s)
                }, me)
                pa_stream_set_read_callback(s, { s, _, userdata in
                    guard let s, let userdata else { return }
                    Unmanaged<PulseCapture>.fromOpaque(userdata).takeUnretainedValue().readAvailable(s)
                }, me)
                let fragmentMicros = UInt64(fragment.components.seconds) * 1_000_000
                    + UInt64(fragment.components.attoseconds / 1_000_000_000_000)
                var attr = pa_buffer_attr(maxlength: UInt32.max, tlength: UInt32.max, prebuf: UInt32.max,
                                          minreq: UInt32.max,
                                          fragsize: UInt32(pa_usec_to_bytes(fragmentMicros, &spec)))
                // ADJUST_LATENCY: fragsize is the end-to-end latency, and the sink follows it.
                // DONT_MOVE: if the VM's sink goes away the stream ends instead of silently
                // following another source. Timing flags keep pa_stream_get_latency current.
                let flags = pa_stream_flags_t(rawValue: PA_STREAM_ADJUST_LATENCY.rawValue
                    | PA_STREAM_DONT_MOVE.rawValue | PA_STREAM_AUTO_TIMING_UPDATE.rawValue
                    | PA_STREAM_INTERPOLATE_TIMING.rawValue)
                if pa_stream_connect_record(s, "\(sinkName).monitor", &attr, flags) < 0 {
                    let reason = PulseConnection.errorString(ctx)
                    Self.release(s)
                    continuation.resume(throwing: PulseError.requestFailed("record \(sinkName).monitor: \(reason)"))
                    return
                }
                stream = s
                framesDelivered = 0
                startWaiter = continuation
            }
        }
    }

    /// Disconnects the stream; no handler calls happen after it returns. Idempotent.
    public func stop() {
        connection.withLock {
            if let s = stream {
                stream = nil
                Self.release(s)
            }
            startWaiter?.resume(throwing: PulseError.requestFailed("capture of \(sinkName) stopped"))
            startWaiter = nil
        }
    }

    private static func release(_ s: OpaquePointer) {
        pa_stream_set_state_callback(s, nil, nil)
        pa_stream_set_read_callback(s, nil, nil)
        pa_stream_disconnect(s)
        pa_stream_unref(s)
    }

    private func streamStateChanged(_ s: OpaquePointer) {
        guard s == stream else { return }
        let state = pa_stream_get_state(s)
        if state == PA_STREAM_READY {
            startWaiter?.resume()
            startWaiter = nil
        } else if state == PA_STREAM_FAILED || state == PA_STREAM_TERMINATED {
            let reason = "record \(sinkName).monitor: " + PulseConnection.errorString(pa_stream_get_context(s))
            stream = nil
            Self.release(s)
            if let waiter = startWaiter {
                startWaiter = nil
                waiter.resume(throwing: PulseError.requestFailed(reason))
            } else {
                handler(.ended(reason))
            }
        }
    }

    private func readAvailable(_ s: OpaquePointer) {
        let now = ContinuousClock.now
        var base = now
        var latency: pa_usec_t = 0
        var negative: Int32 = 0
        if pa_stream_get_latency(s, &latency, &negative) == 0 {
            base = negative != 0 ? now + .microseconds(Int64(latency)) : now - .microseconds(Int64(latency))
        }
        var offsetFrames: UInt64 = 0
        while stream == s {
            var data: UnsafeRawPointer?
            var length = 0
            guard pa_stream_peek(s, &data, &length) == 0 else { return }
            if length == 0 { return }  // nothing buffered (data nil too): not a hole
            let pcm: [UInt8] = if let data {
                Array(UnsafeRawBufferPointer(start: data, count: length))
            } else {
                [UInt8](repeating: 0, count: length)  // a hole: substitute silence
            }
            pa_stream_drop(s)
            let frames = UInt64(length / AudioFormat.bytesPerFrame)
            let chunk = Chunk(pcm: pcm, frameIndex: framesDelivered,
                              captureTime: base + .nanoseconds(Int64(offsetFrames * 1_000_000_000 / UInt64(AudioFormat.sampleRate))),
                              isSilenceFill: data == nil)
            framesDelivered += frames
            offsetFrames += frames
            handler(.chunk(chunk))
        }
    }
}
