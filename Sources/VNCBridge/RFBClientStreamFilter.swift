/// Incremental parser of the client-to-server half of an RFB 3.7/3.8 session (RFC 6143), fed
/// the bytes a browser sends over the WebSocket in whatever chunks they arrive. It returns the
/// bytes to write to the VM's VNC server:
///
/// - `.control`: everything, unchanged. The stream is still parsed so that garbage (unknown
///   types, oversized messages) ends the session here instead of inside QEMU.
/// - `.view`: everything except input: KeyEvent, PointerEvent, ClientCutText, QEMU extended key
///   events, XVP (power control) and SetDesktopSize. Display negotiation (SetPixelFormat,
///   SetEncodings, FramebufferUpdateRequest), QEMU audio messages and the handshake pass, except
///   that SetEncodings loses the extended clipboard pseudo-encoding: QEMU sends the VM's
///   clipboard only to clients that list it, so a viewer never receives the clipboard either.
///
/// ClientInit's shared flag is always forwarded as 1, so that no client can disconnect the
/// others by asking for exclusive access.
///
/// Handshake: the filter accepts only RFB 3.7/3.8 with security type None (1) and refuses 3.3
/// and VNC auth, so it never needs to see the server's bytes (the bridge talks to QEMU's unix
/// socket, which offers None). See `RFBFilterError` for every reason a session ends.
///
/// Memory is bounded: only a message header (at most `maxHeaderLength` bytes) is gathered;
/// payloads (cut text, encoding lists, screen layouts) are forwarded or skipped as they stream
/// through. The one exception is a view session's encoding list (at most `maxBufferedLength`
/// bytes with its header), gathered to be rewritten. Bytes of a message are forwarded only once its header is validated, so QEMU never
/// sees the start of a message the filter rejects.
public struct RFBClientStreamFilter: Sendable {
    public enum Mode: Sendable, Equatable {
        case control
        case view
    }

    /// QEMU's own limit for ClientCutText (and extended clipboard) payloads.
    public static let maxCutTextLength = 1 << 20
    /// More encodings than any real client offers; keeps a SetEncodings payload under 4 KiB.
    public static let maxEncodings = 1024
    /// The most bytes the filter holds back between calls in a control session.
    public static let maxHeaderLength = RFBClientMessage.maxHeaderLength
    /// The most bytes a view session holds back: a whole SetEncodings message.
    public static let maxBufferedLength = 4 + 4 * maxEncodings

    /// May change at any time (e.g. handing control to a viewer); it applies from the next
    /// message on, a message already half-forwarded or half-dropped is finished the old way.
    public var mode: Mode
    /// Client bytes consumed so far, for log lines about where a stream went wrong.
    public private(set) var bytesConsumed = 0
    /// Bytes held back: an incomplete header (<= `maxHeaderLength`), or a view session's
    /// incomplete SetEncodings (<= `maxBufferedLength`).
    public var bufferedByteCount: Int { header.count + (payloadAction == .gather ? 4 + gathered.count : 0) }
    /// The error that ended the session, if any; every later call throws it again.
    public private(set) var failure: RFBFilterError?

    private enum Phase { case version, securityType, clientInit, messages }
    private var phase = Phase.version
    private var header: [UInt8] = []
    private var headerNeed = RFBHandshake.versionLength
    private var payloadRemaining = 0
    /// What happens to the current message's payload bytes.
    private enum PayloadAction { case forward, skip, gather }
    private var payloadAction = PayloadAction.forward
    /// A view session's encoding list, gathered until complete.
    private var gathered: [UInt8] = []

    public init(mode: Mode) {
        self.mode = mode
        header.reserveCapacity(Self.maxHeaderLength)
    }

    /// Parses `chunk` and appends the bytes to forward to `output` (which the caller may reuse
    /// across calls with `removeAll(keepingCapacity: true)`). On error, `output` holds the
    /// complete valid messages that preceded the bad one; the bridge should close the session.
    public mutating func filter<C: Collection<UInt8>>(_ chunk: C, into output: inout [UInt8]) throws(RFBFilterError) {
        if let failure { throw failure }
        var i = chunk.startIndex
        while i != chunk.endIndex {
            if payloadRemaining > 0 {
                // Stream the payload: forward or skip as much of it as this chunk holds.
                let end = chunk.index(i, offsetBy: payloadRemaining, limitedBy: chunk.endIndex) ?? chunk.endIndex
                let count = chunk.distance(from: i, to: end)
                switch payloadAction {
                case .forward: output.append(contentsOf: chunk[i..<end])
                case .skip: break
                case .gather: gathered.append(contentsOf: chunk[i..<end])
                }
                payloadRemaining -= count
                bytesConsumed += count
                i = end
                if payloadRemaining == 0 && payloadAction == .gather { flushGatheredEncodings(into: &output) }
                continue
            }
            header.append(chunk[i])
            i = chunk.index(after: i)
            bytesConsumed += 1
            if header.count == headerNeed {
                do {
                    try headerComplete(into: &output)
                } catch {
                    failure = error
                    throw error
                }
            }
        }
    }

    /// Convenience for callers that want a fresh array per chunk.
    public mutating func filter<C: Collection<UInt8>>(_ chunk: C) throws(RFBFilterError) -> [UInt8] {
        var output: [UInt8] = []
        try filter(chunk, into: &output)
        return output
    }

    /// Called when `header` holds exactly `headerNeed` bytes.
    private mutating func headerComplete(into output: inout [UInt8]) throws(RFBFilterError) {
        switch phase {
        case .version:
            try RFBHandshake.checkVersion(header)
            finishHeader(payload: 0, forward: true, next: .securityType, into: &output)
        case .securityType:
            try RFBHandshake.checkSecurityType(header[0])
            finishHeader(payload: 0, forward: true, next: .clientInit, into: &output)
        case .clientInit:
            // The shared flag is forced on: a client asking for exclusive access would make
            // QEMU disconnect every other viewer of the VM (the worker or a supervisor).
            header[0] = 1
            finishHeader(payload: 0, forward: true, next: .messages, into: &output)
        case .messages:
            switch try RFBClientMessage.inspect(header, maxEncodings: Self.maxEncodings, maxCut: Self.maxCutTextLength) {
            case .needMore(let count):
                headerNeed = count
            case .complete(let payload, let carriesInput):
                let forward = mode == .control || !carriesInput
                finishHeader(payload: payload, forward: forward, next: .messages, into: &output)
            case .setEncodings(let count) where mode == .control:
                finishHeader(payload: 4 * count, forward: true, next: .messages, into: &output)
            case .setEncodings(let count):
                // Held back whole: the count in the header changes if the list does.
                finishHeader(payload: 4 * count, forward: false, next: .messages, into: &output)
                payloadAction = .gather
                if count == 0 { flushGatheredEncodings(into: &output) }
            }
        }
    }

    private mutating func finishHeader(payload: Int, forward: Bool, next: Phase, into output: inout [UInt8]) {
        if forward { output.append(contentsOf: header) }
        header.removeAll(keepingCapacity: true)
        phase = next
        headerNeed = next == .version ? RFBHandshake.versionLength : 1
        payloadRemaining = payload
        payloadAction = forward ? .forward : .skip
    }

    private mutating func flushGatheredEncodings(into output: inout [UInt8]) {
        output.append(contentsOf: RFBClientMessage.setEncodingsWithoutClipboard(gathered))
        gathered.removeAll(keepingCapacity: false)
        payloadAction = .skip
    }
}
