/// The audio relay (libpulse capture, Opus/Ogg, fan-out) arrives with its own issue; the target
/// exists now so that the package layout is final.
public enum AudioRelay {
    /// Capture format the relay will use: 48 kHz stereo, as QEMU's HDA output into PulseAudio.
    public static let sampleRate = 48_000
    public static let channels = 2
}
