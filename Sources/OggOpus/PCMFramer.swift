/// Cuts a stream of raw PCM bytes (signed 16-bit little-endian, interleaved) into whole
/// encoder frames.
///
/// PulseAudio hands out record data in chunks of whatever size its fragment happened to be;
/// a chunk may end in the middle of a frame, of a stereo pair, or even of one sample. The framer
/// keeps the remainder and completes it with the next chunk.
///
/// The buffer is bounded: if the consumer falls behind (or a late-starting null sink delivers a
/// 2-second lump), whole frames beyond `maxBufferedFrames` are dropped from the **oldest** end,
/// because for a live relay fresh audio matters more than complete audio. `droppedFrames`
/// counts them. A value type: each capture loop owns its own.
public struct PCMFramer: Sendable {
    /// Interleaved `Int16` values per frame (samples per channel * channels).
    public let samplesPerFrame: Int
    /// Frames kept at most before the oldest are dropped.
    public let maxBufferedFrames: Int
    /// Whole frames discarded because the buffer was full.
    public private(set) var droppedFrames = 0

    private var bytes: [UInt8] = []
    /// Index of the first unread byte in `bytes` (compacted lazily to avoid O(n) per frame).
    private var readIndex = 0

    private var frameBytes: Int { samplesPerFrame * 2 }

    /// - Parameters:
    ///   - samplesPerChannel: 480 or 960 for 10/20 ms at 48 kHz (any positive value works).
    ///   - channels: interleaved channels (2 for the relay).
    ///   - maxBufferedFrames: bound on the backlog (default 50 frames = 1 s at 20 ms).
    public init(samplesPerChannel: Int, channels: Int = 2, maxBufferedFrames: Int = 50) {
        precondition(samplesPerChannel > 0 && channels > 0 && maxBufferedFrames > 0)
        self.samplesPerFrame = samplesPerChannel * channels
        self.maxBufferedFrames = maxBufferedFrames
    }

    /// Whole frames currently waiting.
    public var bufferedFrames: Int { (bytes.count - readIndex) / frameBytes }

    /// Bytes of the incomplete frame at the end of the buffer.
    public var partialBytes: Int { (bytes.count - readIndex) % frameBytes }

    /// Adds a chunk of any size (including 0 or an odd number of bytes).
    public mutating func append<C: Collection>(_ chunk: C) where C.Element == UInt8 {
        bytes.append(contentsOf: chunk)
        let excess = bufferedFrames - maxBufferedFrames
        if excess > 0 {
            readIndex += excess * frameBytes
            droppedFrames += excess
        }
        compactIfWorthwhile()
    }

    /// The oldest complete frame, or nil if less than one frame is buffered.
    public mutating func nextFrame() -> [Int16]? {
        guard bufferedFrames > 0 else { return nil }
        let start = readIndex
        let frame = [Int16](unsafeUninitializedCapacity: samplesPerFrame) { out, count in
            bytes.withUnsafeBufferPointer { src in
                for i in 0..<samplesPerFrame {
                    let lo = UInt16(src[start + 2 * i])
                    let hi = UInt16(src[start + 2 * i + 1])
                    out[i] = Int16(bitPattern: lo | hi << 8)
                }
            }
            count = samplesPerFrame
        }
        readIndex += frameBytes
        compactIfWorthwhile()
        return frame
    }

    /// Appends `chunk` and returns every frame that is now complete, oldest first.
    public mutating func frames<C: Collection>(appending chunk: C) -> [[Int16]]
    where C.Element == UInt8 {
        append(chunk)
        var result: [[Int16]] = []
        while let frame = nextFrame() { result.append(frame) }
        return result
    }

    /// Discards everything buffered (e.g. after the capture stream restarts).
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        readIndex = 0
    }

    private mutating func compactIfWorthwhile() {
        if readIndex == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex >= 4 * frameBytes && readIndex * 2 >= bytes.count {
            bytes.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }
}
