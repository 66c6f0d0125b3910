/// Everything that can go wrong between the relay and PulseAudio, with messages meant for an
/// operator's log: each says what failed and, where there is one, what to do about it.
public enum PulseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `pulseaudio` binary is not installed (or not on `PATH`).
    case daemonMissing(String)
    /// A daemon was started but never answered on its socket, or exited early; carries its log tail.
    case daemonFailed(String)
    /// libpulse could not create a mainloop, context or stream (out of memory, bad arguments).
    case setupFailed(String)
    /// The context is not connected (never connected, failed, or PulseAudio went away).
    case notConnected(String)
    /// The server refused or failed a request; the string is libpulse's `pa_strerror`.
    case requestFailed(String)
    /// A name that would be spliced into a module argument contains characters that could
    /// inject further arguments.
    case invalidName(String)

    /// True for what no retry can fix: PulseAudio is not installed, or the socket path is unusable.
    public var meansNoAudioOnThisHost: Bool {
        switch self {
        case .daemonMissing, .invalidName: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .daemonMissing(let m): "PulseAudio daemon missing: \(m)"
        case .daemonFailed(let m): "PulseAudio daemon failed: \(m)"
        case .setupFailed(let m): "libpulse setup failed: \(m)"
        case .notConnected(let m): "not connected to PulseAudio: \(m)"
        case .requestFailed(let m): "PulseAudio request failed: \(m)"
        case .invalidName(let m): "invalid PulseAudio name: \(m)"
        }
    }
}
