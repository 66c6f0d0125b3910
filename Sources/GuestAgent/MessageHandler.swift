// Turns each received line into at most one reply. Quick answers (hello, ping, errors) are sent
// right away from the port loop; browser requests run one at a time on a worker thread, since a
// page load can take seconds and the port must keep answering meanwhile.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AgentProtocol

final class MessageHandler: Sendable {
    let browser: any Browser
    let outbox: Outbox
    let inputs: InputWatcher
    /// Requests beyond this many waiting get an immediate "busy" error instead of a queue that
    /// grows for as long as the host keeps sending.
    private let worker = SerialQueue(name: "requests", limit: 32)

    init(browser: any Browser, outbox: Outbox, inputs: InputWatcher) {
        self.browser = browser
        self.outbox = outbox
        self.inputs = inputs
    }

    /// The agent's greeting; the IP is read fresh because the DHCP lease may come late.
    func hello() -> AgentMessage {
        AgentMessage(type: .hello, agentVersion: agentVersion, ip: firstIPv4Address())
    }

    func handle(_ item: AgentLineSplitter.Item) {
        switch item {
        case .tooLong(let count):
            log("rejected a line of \(count) bytes")
            outbox.send(errorReply(id: nil, AgentProtocolError.lineTooLong(count).description))
        case .line(let bytes):
            // Tolerate CRLF from hand-typed sessions (socat, tests); blank lines are keepalives.
            let line = bytes.last == UInt8(ascii: "\r") ? Array(bytes.dropLast()) : bytes
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return }
            do {
                respond(to: try AgentMessage.decode(line: line))
            } catch {
                log("rejected a line: \(error)")
                outbox.send(errorReply(id: Self.lenientID(line), error.description))
            }
        }
    }

    private func respond(to message: AgentMessage) {
        let id = message.id
        log("received \(message.type.rawValue)\(id.map { " id=\($0)" } ?? "")")
        switch message.type {
        case .hello:
            outbox.send(hello())
        case .ping:
            outbox.send(AgentMessage(type: .pong, id: id))
        case .error:
            // Never answer an error with an error: two peers could bounce them forever.
            log("host reported an error: \(message.message ?? "(no message)")")
        case .configure, .navigate, .reset, .status:
            let queued = worker.submit { [self] in
                let (reply, afterReply) = perform(message)
                outbox.send(reply)
                afterReply?()
            }
            if !queued { outbox.send(errorReply(id: id, "busy: too many requests waiting")) }
        case .configured, .resetDone, .state, .pong, .navigated, .page, .blob, .browserCrashed:
            outbox.send(errorReply(id: id, "\(message.type.rawValue) is a guest-to-host message"))
        }
    }

    /// Runs one browser request (on the worker thread) and builds its answer, and what to start
    /// once that answer is queued.
    private func perform(_ message: AgentMessage) -> (AgentMessage, (@Sendable () -> Void)?) {
        let id = message.id
        do {
            switch message.type {
            case .configure:
                // validate() guaranteed id and a non-empty homepage.
                let applied = try browser.configure(homepage: message.homepage ?? "", cookies: message.cookies ?? [], kiosk: message.kiosk ?? false)
                return (AgentMessage(type: .configured, id: id, homepage: applied.homepage, loadError: applied.loadError.map { truncated($0, 1024) }),
                        applied.afterReply)
            case .navigate:
                try browser.navigate(url: message.url ?? "")
                return (AgentMessage(type: .navigated, id: id), nil)
            case .reset:
                // Captures of the old session, queued or still being taken, are abandoned: before
                // the reset (nothing more of them goes out meanwhile) and after it (what the
                // browser produced while stopping), so none reaches the host after reset_done.
                outbox.abandonBulk()
                defer { outbox.abandonBulk() }
                try browser.reset()
                return (AgentMessage(type: .resetDone, id: id), nil)
            default:
                let status = try browser.status()
                let counts = inputs.counts
                return (fittedState(AgentMessage(
                    type: .state, id: id, ip: firstIPv4Address(), homepage: status.homepage,
                    cookies: status.cookies, history: status.history,
                    keyEvents: counts.keys, pointerEvents: counts.pointer, tabs: status.tabs)), nil)
            }
        } catch {
            return (errorReply(id: id, "\(message.type.rawValue) failed: \(error)"), nil)
        }
    }

    /// Error replies must themselves pass the host's validation (message <= 4096 bytes).
    private func errorReply(id: UInt64?, _ text: String) -> AgentMessage {
        var message = ""
        for ch in text {
            guard message.utf8.count + ch.utf8.count <= 1024 else { break }
            message.append(ch)
        }
        return AgentMessage(type: .error, id: id, message: message)
    }

    /// Best effort: the id of a line that failed validation, so the host can fail the right
    /// request instead of waiting for its timeout.
    private static func lenientID(_ line: [UInt8]) -> UInt64? {
        struct OnlyID: Decodable { var id: UInt64? }
        return (try? JSONDecoder().decode(OnlyID.self, from: Data(line)))?.id
    }
}

/// A state reply the host will accept: drops what its validation would reject (over-long URLs,
/// odd cookies) and then the oldest history entries and cookies until the line fits.
func fittedState(_ state: AgentMessage) -> AgentMessage {
    var message = state
    if let homepage = message.homepage, homepage.utf8.count > 8192 { message.homepage = nil }
    message.history = message.history.map { Array($0.filter { $0.utf8.count <= 8192 }.suffix(1000)) }
    if let cookies = message.cookies {
        var kept: [Cookie] = []
        for cookie in cookies {
            let probe = AgentMessage(type: .state, id: 0, cookies: kept + [cookie])
            if (try? probe.validate()) != nil { kept.append(cookie) }
        }
        message.cookies = kept
    }
    while message.encodedLine().count > agentMaxLineBytes {
        if let history = message.history, !history.isEmpty {
            message.history = Array(history.dropFirst(max(1, history.count / 4)))
        } else if let cookies = message.cookies, !cookies.isEmpty {
            message.cookies = Array(cookies.dropLast())
        } else {
            break
        }
    }
    return message
}
