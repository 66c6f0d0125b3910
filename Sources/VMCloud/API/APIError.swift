import Foundation
import Hummingbird
import Libvirt
import VMCloudCore

/// Every error the API answers: `{"error": CODE, "message": TEXT}` with a fitting status.
package struct APIError: HTTPResponseError {
    package let status: HTTPResponse.Status
    package let code: String
    package let message: String
    /// The methods the path has, for a 405 (its `Allow` header).
    var allow: [String] = []

    static func badRequest(_ message: String) -> APIError { APIError(status: .badRequest, code: "bad_request", message: message) }
    static func notFound(_ message: String) -> APIError { APIError(status: .notFound, code: "not_found", message: message) }

    package init(status: HTTPResponse.Status, code: String, message: String, allow: [String] = []) {
        (self.status, self.code, self.message, self.allow) = (status, code, message, allow)
    }

    /// The answer to a refusal from below the API.
    init(_ refusal: Refusal) {
        let status: HTTPResponse.Status = switch refusal.kind {
        case .invalid: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .unprocessable: .unprocessableContent
        case .forbidden: .forbidden
        case .unavailable: .serviceUnavailable
        case .upstreamFailed: .badGateway
        case .upstreamTimedOut: .gatewayTimeout
        }
        self.init(status: status, code: refusal.code, message: refusal.message)
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONBody.response(ErrorBody(error: code, message: message), status: status)
        if !allow.isEmpty { response.headers[.allow] = allow.joined(separator: ", ") }
        return response
    }

    struct ErrorBody: Encodable {
        let error: String
        let message: String
    }
}

/// Turns every failure into the JSON error shape: our APIErrors, Hummingbird's own (unknown
/// route, wrong method), store lookups that found nothing, the pool's refusals, and anything
/// unexpected (500, logged).
package struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Turns the router's 404 for a documented path into a 405 with `Allow`.
    var documented = DocumentedRoutes(openAPIDocument: "")

    package init() {}

    init(documented: DocumentedRoutes) { self.documented = documented }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let refusal as Refusal {
            throw APIError(refusal)
        } catch let error as StoreError {
            throw APIError.notFound(error.description)
        } catch MachineStoreError.notFound(let ref) {
            throw APIError.notFound("no VM '\(ref.prefix(64))'")
        } catch let error as MachineStoreError {
            throw APIError(status: .conflict, code: "name_taken", message: error.description)
        } catch let error as ResourceStoreError {
            switch error {
            case .notFound: throw APIError.notFound(error.description)
            case .exists: throw APIError(status: .conflict, code: "resource_exists", message: error.description)
            }
        } catch let error as AgentError {
            throw APIError(status: .badGateway, code: "agent_error", message: error.description)
        } catch where isLibvirtUnreachable(error) {
            // libvirtd is down (or restarting): what needs it waits for it, the rest still answers.
            throw APIError(status: .serviceUnavailable, code: "libvirt_unavailable", message: "libvirt is not reachable: \(error)")
        } catch let error as LibvirtError {
            throw APIError(status: .badGateway, code: "libvirt_error", message: "\(error)")
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            // The router found no route: a documented path asked with another method is a 405.
            let allowed = documented.methods(for: request.uri.path)
            guard !allowed.isEmpty, !allowed.contains(request.method.rawValue) else {
                throw APIError(status: .notFound, code: "not_found", message: "Not Found: \(request.method) \(request.uri.path)")
            }
            throw APIError(status: .methodNotAllowed, code: "method_not_allowed",
                           message: "\(request.method) is not allowed on \(request.uri.path)", allow: allowed.sorted())
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "not_found" : error.status == .methodNotAllowed ? "method_not_allowed" : "http_error"
            throw APIError(status: error.status, code: code,
                           message: error.body ?? "\(error.status.reasonPhrase): \(request.method) \(request.uri.path)")
        } catch {
            context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            throw APIError(status: .internalServerError, code: "internal", message: "internal error: \(error)")
        }
    }
}
