import ChildProcess
import AudioRelay
import Foundation

public struct DecodedWAV: Sendable {
    public var sampleRate: Int
    public var channels: Int
    public var samples: [Int16]   // interleaved
    public var seconds: Double { Double(samples.count / channels) / Double(sampleRate) }

    /// Average of the channels.
    public var mono: [Double] {
        stride(from: 0, to: samples.count - channels + 1, by: channels).map { i in
            (0..<channels).reduce(0.0) { $0 + Double(samples[i + $1]) } / Double(channels)
        }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Runs a tool, returning its exit status and combined output (one pipe, read to EOF before
/// waiting, so a chatty tool cannot block on a full pipe).
public func runCommand(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

/// Decodes Ogg/Opus bytes with the real `opusdec` and parses its 16-bit WAV output.
public func decodeWithOpusdec(_ ogg: [UInt8]) throws -> (wav: DecodedWAV, log: String) {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("oggopus-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let input = dir.appendingPathComponent("in.opus")
    let output = dir.appendingPathComponent("out.wav")
    try Data(ogg).write(to: input)

    let (status, log) = try runCommand("/usr/bin/opusdec", ["--rate", "48000", input.path, output.path])
    guard status == 0 else {
        throw TestFailure(description: "opusdec exited \(status): \(log)")
    }
    return (try parseWAV([UInt8](Data(contentsOf: output))), log)
}

public func parseWAV(_ b: [UInt8]) throws -> DecodedWAV {
    func u32(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 | Int(b[o + 2]) << 16 | Int(b[o + 3]) << 24 }
    func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
    guard b.count >= 12, Array(b[0..<4]) == Array("RIFF".utf8), Array(b[8..<12]) == Array("WAVE".utf8)
    else { throw TestFailure(description: "not a WAV file") }
    var offset = 12
    var rate = 0, channels = 0, bits = 0
    while offset + 8 <= b.count {
        let id = String(decoding: b[offset..<offset + 4], as: UTF8.self)
        let size = u32(offset + 4)
        let body = offset + 8
        if id == "fmt " {
            channels = u16(body + 2)
            rate = u32(body + 4)
            bits = u16(body + 14)
        } else if id == "data" {
            guard bits == 16, channels > 0 else { throw TestFailure(description: "fmt \(bits) bit") }
            let end = min(b.count, body + size)
            var samples: [Int16] = []
            samples.reserveCapacity((end - body) / 2)
            var i = body
            while i + 1 < end {
                samples.append(Int16(bitPattern: UInt16(b[i]) | UInt16(b[i + 1]) << 8))
                i += 2
            }
            return DecodedWAV(sampleRate: rate, channels: channels, samples: samples)
        }
        offset = body + size + (size & 1)
    }
    throw TestFailure(description: "no data chunk")
}

/// Goertzel power of `frequency` in `x`.
public func goertzelPower(_ x: ArraySlice<Double>, frequency: Double, rate: Double) -> Double {
    let coefficient = 2 * cos(2 * .pi * frequency / rate)
    var s1 = 0.0, s2 = 0.0
    for v in x {
        let s = v + coefficient * s1 - s2
        s2 = s1
        s1 = s
    }
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

/// Frequency (50...5000 Hz, 10 Hz steps) with the most power over the loudest 0.1 s.
public func dominantFrequency(_ wav: DecodedWAV) -> Double {
    let mono = wav.mono
    let window = wav.sampleRate / 10
    var loudest = 0
    var loudestEnergy = -1.0
    var start = 0
    while start + window <= mono.count {
        let energy = mono[start..<(start + window)].reduce(0) { $0 + $1 * $1 }
        if energy > loudestEnergy { (loudest, loudestEnergy) = (start, energy) }
        start += window / 2
    }
    let slice = mono[loudest..<min(mono.count, loudest + window)]
    return stride(from: 50.0, through: 5000.0, by: 10.0).max {
        goertzelPower(slice, frequency: $0, rate: Double(wav.sampleRate))
            < goertzelPower(slice, frequency: $1, rate: Double(wav.sampleRate))
    }!
}

public struct OggPage: Sendable {
    public var headerType: UInt8
    public var granule: Int64
    public var serial: UInt32
    public var sequence: UInt32
    public var body: [UInt8]
    public var isBOS: Bool { headerType & 2 != 0 }
    public var isEOS: Bool { headerType & 4 != 0 }
}

/// Minimal Ogg page splitter for structural checks (CRC is left to opusdec).
public func parsePages(_ b: [UInt8]) throws -> [OggPage] {
    var pages: [OggPage] = []
    var o = 0
    func le(_ at: Int, _ n: Int) -> UInt64 {
        (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }
    while o < b.count {
        guard o + 27 <= b.count, Array(b[o..<o + 4]) == Array("OggS".utf8) else {
            throw TestFailure(description: "bad page at \(o)")
        }
        let segments = Int(b[o + 26])
        let lacing = b[(o + 27)..<(o + 27 + segments)]
        let bodyLength = lacing.reduce(0) { $0 + Int($1) }
        let bodyStart = o + 27 + segments
        pages.append(OggPage(
            headerType: b[o + 5],
            granule: Int64(bitPattern: le(o + 6, 8)),
            serial: UInt32(le(o + 14, 4)),
            sequence: UInt32(le(o + 18, 4)),
            body: Array(b[bodyStart..<(bodyStart + bodyLength)])))
        o = bodyStart + bodyLength
    }
    return pages
}

/// Seconds of `wav` in which `frequency` is the loudest thing: 10 ms windows whose power at
/// `frequency` is over half the window's total energy and clearly above silence.
public func toneSeconds(_ wav: DecodedWAV, frequency: Double) -> Double {
    let mono = wav.mono
    let window = wav.sampleRate / 100
    var toneWindows = 0
    var start = 0
    while start + window <= mono.count {
        let slice = mono[start..<(start + window)]
        let energy = slice.reduce(0) { $0 + $1 * $1 }
        // Goertzel power of a pure sine of amplitude A over N samples is (A N / 2)^2; the
        // window's energy is A^2 N / 2: their ratio is N / 2 for a pure tone.
        let power = goertzelPower(slice, frequency: frequency, rate: Double(wav.sampleRate))
        if energy / Double(window) > 1_000 && power / energy > Double(window) / 4 { toneWindows += 1 }
        start += window
    }
    return Double(toneWindows) / 100
}

/// A 16-bit stereo PCM WAV of a sine tone.
public func sineWAV(frequency: Double, seconds: Double, rate: Int = 48_000, amplitude: Double = 0.5) -> Data {
    let frames = Int(seconds * Double(rate))
    var pcm = Data(capacity: frames * 4)
    for n in 0..<frames {
        let value = Int16(amplitude * 32767 * sin(2 * Double.pi * frequency * Double(n) / Double(rate)))
        withUnsafeBytes(of: value.littleEndian) { pcm.append(contentsOf: $0) }
        withUnsafeBytes(of: value.littleEndian) { pcm.append(contentsOf: $0) }
    }
    var wav = Data()
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { wav.append(contentsOf: $0) } }
    func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { wav.append(contentsOf: $0) } }
    wav.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(36 + pcm.count))
    wav.append(contentsOf: Array("WAVEfmt ".utf8)); u32(16); u16(1); u16(2)
    u32(UInt32(rate)); u32(UInt32(rate * 4)); u16(4); u16(16)
    wav.append(contentsOf: Array("data".utf8)); u32(UInt32(pcm.count))
    wav.append(pcm)
    return wav
}


/// Plays a WAV into PulseAudio sink `sink` of the daemon at `socketPath` with `paplay`; returns
/// paplay's exit status once it has played everything.
public func paplay(wav: Data, socketPath: String, sink: String, directory: String) async throws -> Int32 {
    let file = directory + "/tone-\(UUID().uuidString).wav"
    try wav.write(to: URL(fileURLWithPath: file))
    defer { try? FileManager.default.removeItem(atPath: file) }
    let process = try ChildProcess(
        executable: "/usr/bin/paplay", arguments: ["--server=unix:\(socketPath)", "--device=\(sink)", file],
        environment: ["HOME": directory, "PATH": "/usr/bin:/bin"])
    return await process.exit()
}
