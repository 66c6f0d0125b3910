// Turns one received line into at most one reply. Pure request/response logic; the port I/O
// lives in AgentLoop.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AgentProtocol

struct MessageHandler {
    let browser: any Browser

    /// The agent's greeting; the IP is read fresh because the DHCP lease may come late.
    func hello() -> AgentMessage {
        AgentMessage(type: .hello, agentVersion: agentVersion, ip: firstIPv4Address())
    }

    func handle(_ item: AgentLineSplitter.Item) -> AgentMessage? {
        switch item {
        case .tooLong(let count):
            log("rejected a line of \(count) bytes")
            return errorReply(id: nil, AgentProtocolError.lineTooLong(count).description)
        case .line(let bytes):
            // Tolerate CRLF from hand-typed sessions (socat, tests); blank lines are keepalives.
            let line = bytes.last == UInt8(ascii: "\r") ? Array(bytes.dropLast()) : bytes
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return nil }
            do {
                return respond(to: try AgentMessage.decode(line: line))
            } catch {
                log("rejected a line: \(error)")
                return errorReply(id: Self.lenientID(line), error.description)
            }
        }
    }

    private func respond(to message: AgentMessage) -> AgentMessage? {
        let id = message.id
        log("received \(message.type.rawValue)\(id.map { " id=\($0)" } ?? "")")
        switch message.type {
        case .hello:
            return hello()
        case .configure:
            // validate() guaranteed id and a non-empty homepage.
            do {
                let applied = try browser.configure(homepage: message.homepage ?? "", cookies: message.cookies ?? [])
                return AgentMessage(type: .configured, id: id, homepage: applied)
            } catch {
                return errorReply(id: id, "configure failed: \(error)")
            }
        case .reset:
            do {
                try browser.reset()
                return AgentMessage(type: .resetDone, id: id)
            } catch {
                return errorReply(id: id, "reset failed: \(error)")
            }
        case .status:
            do {
                return AgentMessage(type: .state, id: id, ip: firstIPv4Address(), homepage: try browser.currentHomepage())
            } catch {
                return errorReply(id: id, "status failed: \(error)")
            }
        case .ping:
            return AgentMessage(type: .pong, id: id)
        case .error:
            // Never answer an error with an error: two peers could bounce them forever.
            log("host reported an error: \(message.message ?? "(no message)")")
            return nil
        case .navigate:
            return errorReply(id: id, "navigate is not supported by this browser")
        case .configured, .resetDone, .state, .pong, .navigated, .page, .blob, .browserCrashed:
            return errorReply(id: id, "\(message.type.rawValue) is a guest-to-host message")
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
