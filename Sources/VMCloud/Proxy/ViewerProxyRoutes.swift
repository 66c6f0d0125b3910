import AsyncHTTPClient
import Foundation
import Hummingbird
import VMCloudCore

/// `/viewers/{project}/{kind}/...`, every method: a keyed viewer's service on the appliance's
/// address (its guest is on libvirt's NAT network, which only this host reaches). Open routes:
/// the viewer's access key is the credential (ViewerProxyTarget.admit). The request goes to the
/// viewer's one port through the smart proxy's forwarder, without the key or the caller's
/// credentials; the viewer's VM runs already, so nothing is woken and no idle time is kept.
struct ViewerProxyRoutes {
    let proxy: SmartProxy

    func register(on router: APIRouter) {
        for method in ProxyRoutes.methods {
            router.on("viewers/:project/:kind", method: method, access: .open) { request, context in try await handle(request, context) }
            router.on("viewers/:project/:kind/**", method: method, access: .open) { request, context in try await handle(request, context) }
        }
    }

    func handle(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let (target, machine, proof) = try await ViewerProxyTarget.admit(request, store: proxy.store)
        if target.rest.isEmpty {
            // Relative links in the service's pages need the trailing slash.
            let location = target.prefix + "/" + (request.uri.query.map { "?" + $0 } ?? "")
            return Response(status: .permanentRedirect, headers: [.location: location, .contentLength: "0"])
        }
        if proof == .query, [.get, .head].contains(request.method) {
            // A browser opened the URL with the key: the cookie lets the page's links and
            // subresources in, and the key leaves the address bar (and the Referer the page's
            // requests would carry to the guest).
            let secure = proxy.publicURL?.lowercased().hasPrefix("https:") == true
            return Response(status: .seeOther, headers: [
                .location: target.prefix + target.pathAndQuery, .setCookie: ViewerProxyAccess.setCookie(key: machine.accessKey ?? "", prefix: target.prefix, secure: secure),
                .cacheControl: "no-store", .contentLength: "0"])
        }

        let upstream = try ViewerProxyTarget.upstream(machine)
        let length = request.headers[.contentLength].flatMap { Int($0) }
        let hasBody = (length ?? 0) > 0 || request.headers[.transferEncoding] != nil
        let outgoing = UpstreamForwarder.Outgoing(
            method: request.method, pathAndQuery: target.pathAndQuery, headers: ViewerProxyAccess.forwardedHeaders(request.headers),
            body: hasBody ? request.body : nil, bodyLength: hasBody ? length : nil, prefix: target.prefix,
            peer: context.remoteAddress?.ipAddress)
        let answer: HTTPClientResponse
        do {
            answer = try await proxy.forwarder.forward(outgoing, to: upstream)
        } catch .other(let error) {
            throw error
        } catch .unreachable(let why) {
            throw APIError(status: .badGateway, code: "upstream_unreachable",
                           message: "viewer \(target.project)/\(target.kind): cannot connect to \(upstream.host):\(upstream.port): \(why)")
        }
        var response = ProxyRoutes.response(answer, activity: nil, head: request.method == .head)
        response.headers = ViewerProxyAccess.responseHeaders(response.headers)
        return response
    }
}
