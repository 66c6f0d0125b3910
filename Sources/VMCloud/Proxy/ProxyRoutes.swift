import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import VMCloudCore

/// `/r/{id}/...` and `/smart_proxy/{id}/{groups}/...`, every method: check the caller (401,
/// 404, 403 before anything starts), wake the resource's VM (ResourceWaker), forward
/// (UpstreamForwarder) and stream the answer back. The request counts as activity until its
/// response has been written to the caller.
struct ProxyRoutes {
    let proxy: SmartProxy

    static let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
    /// Any client (its groups are checked per resource), also by `?key=`: a browser tab opening
    /// a proxied page cannot set headers. The WebSocket upgrades on these paths accept the same.
    static let access = RouteAccess.client(.queryKey)

    func register(on router: APIRouter) {
        for method in Self.methods {
            router.on("r/:resource", method: method, access: Self.access) { request, context in try await handle(request, context, smart: false) }
            router.on("r/:resource/**", method: method, access: Self.access) { request, context in try await handle(request, context, smart: false) }
            router.on("smart_proxy/:resource/:groups", method: method, access: Self.access) { request, context in try await handle(request, context, smart: true) }
            router.on("smart_proxy/:resource/:groups/**", method: method, access: Self.access) { request, context in try await handle(request, context, smart: true) }
        }
    }

    func handle(_ request: Request, _ context: AppRequestContext, smart: Bool) async throws -> Response {
        let client = try context.requireClient()
        let target = try ProxyTarget.parse(path: request.uri.path, query: request.uri.query, smart: smart)
        guard let resource = try await proxy.store.resource(target.resource) else {
            throw APIError.notFound("no resource '\(target.resource)'")
        }
        try ProxyAccess.check(client: client, claimed: target.claimed, required: resource.requiredGroups, resource: resource.id)
        if target.rest.isEmpty {
            // Relative links in the service's pages need the trailing slash.
            let location = target.prefix + "/" + (request.uri.query.map { "?" + $0 } ?? "")
            return Response(status: .permanentRedirect, headers: [.location: location, .contentLength: "0"])
        }

        let waker = proxy.waker
        await waker.begin(resource.id)
        let activity = ActivityToken(waker: waker, resource: resource.id)
        do {
            let length = request.headers[.contentLength].flatMap { Int($0) }
            let hasBody = (length ?? 0) > 0 || request.headers[.transferEncoding] != nil
            let outgoing = UpstreamForwarder.Outgoing(
                method: request.method, pathAndQuery: target.pathAndQuery, headers: request.headers,
                body: hasBody ? request.body : nil, bodyLength: hasBody ? length : nil, prefix: target.prefix,
                peer: context.remoteAddress?.ipAddress)
            let upstream = try await waker.upstream(for: resource)
            let answer = try await forward(outgoing, upstream, resource: resource, retry: !hasBody && [.get, .head, .options].contains(request.method))
            return Self.response(answer, activity: activity, head: request.method == .head)
        } catch {
            activity.end()
            throw error
        }
    }

    /// One forward; a connect failure on a kept address (the VM went away) looks the resource
    /// up again and, for a request without a body, tries once more.
    private func forward(_ outgoing: UpstreamForwarder.Outgoing, _ upstream: Upstream, resource: ResourceRecord, retry: Bool) async throws -> HTTPClientResponse {
        do {
            return try await proxy.forwarder.forward(outgoing, to: upstream)
        } catch .other(let error) {
            throw error
        } catch .unreachable(let why) {
            await proxy.waker.invalidate(resource.id, upstream)
            guard retry else { throw Self.unreachable(resource, upstream, why) }
        }
        let again = try await proxy.waker.upstream(for: resource)
        do {
            return try await proxy.forwarder.forward(outgoing, to: again)
        } catch .other(let error) {
            throw error
        } catch .unreachable(let why) {
            await proxy.waker.invalidate(resource.id, again)
            throw Self.unreachable(resource, again, why)
        }
    }

    private static func unreachable(_ resource: ResourceRecord, _ upstream: Upstream, _ why: String) -> APIError {
        APIError(status: .badGateway, code: "upstream_unreachable",
                 message: "resource \(resource.id): cannot connect to \(upstream.host):\(upstream.port): \(why)")
    }

    /// The upstream's answer, streamed; the activity (if one is kept) ends once it is written
    /// (or dropped).
    static func response(_ answer: HTTPClientResponse, activity: ActivityToken?, head: Bool) -> Response {
        let headers = UpstreamForwarder.responseHeaders(answer.headers)
        let length = answer.headers.first(name: "content-length").flatMap { Int($0) }
        let upstreamBody = answer.body
        let body = ResponseBody(contentLength: head ? nil : length) { writer in
            defer { activity?.end() }
            if !head {
                for try await chunk in upstreamBody { try await writer.write(chunk) }
            }
            try await writer.finish(nil)
        }
        return Response(status: .init(code: Int(answer.status.code), reasonPhrase: answer.status.reasonPhrase), headers: headers, body: body)
    }
}

/// One request's activity on a resource: ended exactly once, when its response is written, or
/// when the response is dropped unwritten (deinit), so no path leaves a VM counted busy forever.
final class ActivityToken: @unchecked Sendable {
    private let waker: ResourceWaker
    private let resource: String
    private let lock = NSLock()
    private var ended = false

    init(waker: ResourceWaker, resource: String) {
        self.waker = waker
        self.resource = resource
    }

    func end() {
        lock.lock()
        let first = !ended
        ended = true
        lock.unlock()
        guard first else { return }
        let waker = waker, resource = resource
        Task { await waker.end(resource) }
    }

    deinit { end() }
}
