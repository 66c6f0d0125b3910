// Chrome DevTools Protocol over one WebSocket: numbered calls matched to their replies, events
// handed to a callback. A reader thread owns receiving; callers block (with a timeout) on their
// own reply, so a capture and a status request can be in flight at the same time. The agent
// connects to the browser target and reaches each tab through a flattened session
// (`sessionId` on calls and events, see CDPPage).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct CDPError: Error, CustomStringConvertible {
    let description: String
}

/// One incoming event: its method, the session (tab) it came from, nil for the browser's own,
/// and the raw message (decode `params` with `CDPEvent.params`).
struct CDPEvent: @unchecked Sendable {
    let method: String
    let sessionId: String?
    let raw: [UInt8]

    func params<P: Decodable>(_ type: P.Type) -> P? {
        try? JSONDecoder().decode(ParamsEnvelope<P>.self, from: Data(raw)).params
    }
}

private struct ParamsEnvelope<P: Decodable>: Decodable { var params: P }
private struct ResultEnvelope<R: Decodable>: Decodable { var result: R }

final class CDPClient: @unchecked Sendable {
    /// A reply larger than this is dropped by the WebSocket and the call fails: enough for a
    /// 32 MiB MHTML even with JSON escaping, small enough for a 2 GiB VM.
    static let maxMessage = 96 << 20

    private let socket: WebSocket
    private let lock = Lock()
    private var nextID: UInt64 = 1
    /// Replies (or failures) by call id, waiting to be picked up.
    private var replies: [UInt64: Result<[UInt8], CDPError>] = [:]
    private var pending: Set<UInt64> = []
    private var closedReason: String?
    private let onEvent: @Sendable (CDPEvent) -> Void

    init(port: UInt16, path: String, onEvent: @escaping @Sendable (CDPEvent) -> Void, onClose: @escaping @Sendable (String) -> Void) throws {
        socket = try WebSocket(port: port, path: path, maxMessage: Self.maxMessage)
        self.onEvent = onEvent
        startThread("cdp-reader") { [self] in
            let why = readLoop()
            onClose(why)
        }
    }

    var isClosed: Bool { lock.withLock { closedReason != nil } }

    func close() { socket.close() }

    /// Sends `method` and waits for its result, decoded as `R`.
    func call<R: Decodable>(_ method: String, _ params: JSONValue = [:], session: String? = nil, timeout: Double = 30, as type: R.Type) throws -> R {
        let raw = try callRaw(method, params, session: session, timeout: timeout)
        do {
            return try JSONDecoder().decode(ResultEnvelope<R>.self, from: Data(raw)).result
        } catch {
            throw CDPError(description: "\(method): unexpected reply: \(error)")
        }
    }

    /// For calls whose result does not matter beyond success.
    func call(_ method: String, _ params: JSONValue = [:], session: String? = nil, timeout: Double = 30) throws {
        _ = try callRaw(method, params, session: session, timeout: timeout)
    }

    private func callRaw(_ method: String, _ params: JSONValue, session: String?, timeout: Double) throws -> [UInt8] {
        try finish(try begin(method, params, session: session), method, timeout: timeout)
    }

    /// Sends every call before waiting for any reply, then waits for each: a tab that is
    /// paused until it is set up answers its setup calls only once the last one resumes it.
    /// Returns each call's failure, nil for those that succeeded.
    func callAll(_ calls: [(String, JSONValue)], session: String?, timeout: Double = 30) -> [CDPError?] {
        let sent = calls.map { call in Result { try begin(call.0, call.1, session: session) } }
        return zip(calls, sent).map { call, id in
            do {
                _ = try finish(try id.get(), call.0, timeout: timeout)
                return nil
            } catch let error as CDPError {
                return error
            } catch {
                return CDPError(description: "\(call.0): \(error)")
            }
        }
    }

    /// Sends one call; returns its id for `finish`.
    private func begin(_ method: String, _ params: JSONValue, session: String?) throws -> UInt64 {
        let id: UInt64 = try lock.withLock {
            if let closedReason { throw CDPError(description: "\(method): DevTools connection closed: \(closedReason)") }
            defer { nextID += 1 }
            pending.insert(nextID)
            return nextID
        }
        struct Request: Encodable { var id: UInt64; var method: String; var params: JSONValue; var sessionId: String? }
        do {
            try socket.sendText([UInt8](try JSONEncoder().encode(Request(id: id, method: method, params: params, sessionId: session))))
        } catch {
            _ = lock.withLock { pending.remove(id) }
            throw CDPError(description: "\(method): \(error)")
        }
        return id
    }

    /// Waits for the reply to call `id`, at most `timeout` seconds.
    private func finish(_ id: UInt64, _ method: String, timeout: Double) throws -> [UInt8] {
        let result: Result<[UInt8], CDPError>? = lock.withLock {
            _ = lock.wait(until: Deadline(seconds: timeout)) { replies[id] != nil || closedReason != nil }
            pending.remove(id)
            if let reply = replies.removeValue(forKey: id) { return reply }
            if let closedReason { return .failure(CDPError(description: "DevTools connection closed: \(closedReason)")) }
            return nil
        }
        guard let result else { throw CDPError(description: "\(method): no reply within \(Int(timeout)) s") }
        switch result {
        case .success(let raw): return raw
        case .failure(let error): throw CDPError(description: "\(method): \(error)")
        }
    }

    /// Receives until the connection ends; returns why.
    private func readLoop() -> String {
        struct Head: Decodable {
            struct Failure: Decodable { var code: Int?; var message: String? }
            var id: UInt64?
            var method: String?
            var sessionId: String?
            var error: Failure?
        }
        while true {
            let message: WebSocketMessage
            do {
                message = try socket.receive()
            } catch {
                let why = "\(error)"
                lock.withLock { closedReason = why; lock.broadcast() }
                return why
            }
            switch message {
            case .binary:
                continue  // DevTools speaks text; ignore anything else
            case .oversized(let size, let prefix):
                // Chromium writes "id" first, so the prefix still says whose reply it was.
                guard let id = Self.leadingID(prefix) else { log("dropped a DevTools message of \(size) bytes"); continue }
                deliver(id, .failure(CDPError(description: "reply of \(size) bytes exceeds \(Self.maxMessage)")))
            case .text(let raw):
                guard let head = try? JSONDecoder().decode(Head.self, from: Data(raw)) else {
                    log("ignored a DevTools message that is not JSON")
                    continue
                }
                if let id = head.id {
                    if let failure = head.error {
                        deliver(id, .failure(CDPError(description: "error \(failure.code ?? 0): \(String((failure.message ?? "").prefix(300)))")))
                    } else {
                        deliver(id, .success(raw))
                    }
                } else if let method = head.method {
                    onEvent(CDPEvent(method: method, sessionId: head.sessionId, raw: raw))
                }
            }
        }
    }

    private func deliver(_ id: UInt64, _ result: Result<[UInt8], CDPError>) {
        lock.withLock {
            // A reply nobody waits for any more (timed out) is dropped, not kept forever.
            guard pending.contains(id) else { return }
            replies[id] = result
            lock.broadcast()
        }
    }

    /// `{"id":123,...` -> 123.
    static func leadingID(_ prefix: [UInt8]) -> UInt64? {
        let text = String(decoding: prefix, as: UTF8.self)
        guard let range = text.firstRange(of: "\"id\":") else { return nil }
        return UInt64(text[range.upperBound...].prefix { $0.isNumber })
    }
}

/// One tab's flattened session on the browser connection: calls carry its `sessionId`.
struct CDPPage: Sendable {
    let client: CDPClient
    let sessionId: String

    var isClosed: Bool { client.isClosed }

    func call<R: Decodable>(_ method: String, _ params: JSONValue = [:], timeout: Double = 30, as type: R.Type) throws -> R {
        try client.call(method, params, session: sessionId, timeout: timeout, as: type)
    }

    func call(_ method: String, _ params: JSONValue = [:], timeout: Double = 30) throws {
        try client.call(method, params, session: sessionId, timeout: timeout)
    }
}
