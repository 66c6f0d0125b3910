/// Why the engine or the store refuses what a caller asked, in the domain's words: the API's
/// `JSONErrorMiddleware` maps the kind to an HTTP status and keeps the code and message, so the
/// layers below the API never build HTTP answers themselves.
package struct Refusal: Error, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// The input is malformed or out of range.
        case invalid
        case notFound
        /// The thing exists but its state does not allow it now.
        case conflict
        /// Well-formed, but it asks for something this host cannot do.
        case unprocessable
        case forbidden
        /// Too many at once, or a part that is down: worth retrying later.
        case unavailable
        /// What we forward to (a guest's service) failed or refused.
        case upstreamFailed
        /// What we forward to did not answer in time.
        case upstreamTimedOut
    }

    package let kind: Kind
    package let code: String
    package let message: String

    package init(_ kind: Kind, code: String, _ message: String) {
        (self.kind, self.code, self.message) = (kind, code, message)
    }

    package static func invalid(_ message: String) -> Refusal { Refusal(.invalid, code: "bad_request", message) }
    package static func notFound(_ message: String) -> Refusal { Refusal(.notFound, code: "not_found", message) }
    package static func conflict(code: String, _ message: String) -> Refusal { Refusal(.conflict, code: code, message) }

    package var description: String { "\(code): \(message)" }
}
