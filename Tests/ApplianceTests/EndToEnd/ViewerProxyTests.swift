import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A keyed viewer's `url` is on the appliance (the guest's NAT address is reachable from this
/// host only): the test image's busybox httpd (`vmcloud.httpd=8080`) in a viewer VM, opened
/// through `/viewers/{project}/{kind}/` with the viewer's key, its cookie, and others' keys.
@Suite(.serialized) struct ViewerProxyTests {
    @Test func theURLIsOnTheApplianceAndOpensWithTheViewersKeyOnly() async throws {
        try await withAppliance("viewer-proxy") { run in
            _ = try MachineLifecycleTests.stockImageStore(run)
            let base = run.appliance.baseURL
            var body = MachineLifecycleTests.spec("unused", ["image": "test/disk.qcow2", "port": 8080, "wait": 120])
            for key in ["name", "hypervisor", "sys_arch", "stop_grace", "cpu_count", "hda_image"] { body[key] = nil }
            body["cmdline"] = (body["cmdline"] as! String) + " vmcloud.httpd=8080"

            // Another project's viewer: its key (and the cookie its URL sets) only; its VM is not
            // needed, so it goes at once and leaves the CPUs to this test's viewer.
            let other = try await run.api.object("PUT", "/v1/viewers/p2/web", body.merging(["wait": 0]) { $1 }, status: 202)
            let otherKey = try #require(other["access_key"] as? String)
            let otherCookie = try #require(try Self.head(run, "/viewers/p2/web/?key=\(otherKey)").cookie)
            _ = try await run.api.object("DELETE", "/v1/viewers/p2/web", headers: ["X-Viewer-Key": otherKey])

            let viewer = try await run.api.object("PUT", "/v1/viewers/p1/web", body)
            let key = try #require(viewer["access_key"] as? String)
            let url = try #require(viewer["url"] as? String)
            #expect(url == "\(base)/viewers/p1/web/?key=\(key)", "on the appliance's address: \(viewer)")
            #expect((viewer["ip"] as? String)?.hasPrefix("192.168.122.") == true && viewer["port"] as? Int == 8080, "\(viewer)")

            // A browser opening the URL: to the same page without the key, with a cookie for
            // this viewer's path that scripts cannot read.
            let opened = try Self.head(run, String(url.dropFirst(base.count)))
            #expect(opened.status == 303 && opened.location == "/viewers/p1/web/", "\(opened)")
            let setCookie = try #require(opened.setCookie)
            #expect(setCookie.contains("Path=/viewers/p1/web/") && setCookie.contains("HttpOnly") && !setCookie.contains(key), "\(setCookie)")
            let cookie = try #require(opened.cookie)
            let (page, html) = try await Self.fetch(base + "/viewers/p1/web/", headers: ["Cookie": cookie])
            #expect(page == 200 && html.contains("vmcloud-test-guest"), "\(page) \(html.prefix(300))")
            let boot = try #require(SmartProxyTests.bootId(html))
            let (byHeader, again) = try await Self.fetch(base + "/viewers/p1/web/index.html", headers: ["X-Viewer-Key": key])
            #expect(byHeader == 200 && SmartProxyTests.bootId(again) == boot)

            // No key, a wrong one, the other project's key or cookie, the appliance's admin key:
            // 401, nothing forwarded. No viewer: 404.
            let refused: [(String, [String: String])] = [
                ("/viewers/p1/web/", [:]),
                ("/viewers/p1/web/?key=\(String(key.reversed()))", [:]),
                ("/viewers/p1/web/", ["X-Viewer-Key": otherKey]),
                ("/viewers/p1/web/?key=\(otherKey)", [:]),
                ("/viewers/p1/web/", ["Cookie": otherCookie]),
                ("/viewers/p1/web/", ["Authorization": "Bearer \(run.appliance.adminKey ?? "")"]),
            ]
            for (path, headers) in refused {
                let (status, answer) = try await Self.fetch(base + path, headers: headers)
                #expect(status == 401 && answer.contains("invalid_key"), "\(path) \(headers): \(status) \(answer.prefix(200))")
            }
            #expect(try await Self.fetch(base + "/viewers/p9/web/", headers: ["X-Viewer-Key": key]).0 == 404)

            // What the guest sees: the path after the prefix and the query, without the key.
            let (echoed, echo) = try await Self.fetch(
                base + "/viewers/p1/web/cgi-bin/echo?a=1&key=\(key)", method: "POST", body: "hello viewer",
                headers: ["Cookie": cookie + "; app=1", "Authorization": "Bearer \(run.appliance.adminKey ?? "")"])
            #expect(echoed == 200 && echo.contains("method=POST\nuri=/cgi-bin/echo?a=1\nquery=a=1\n") && echo.contains("hello viewer"), "\(echo)")
            #expect(!echo.contains(key) && SmartProxyTests.bootId(echo) == boot, "\(echo)")
        }
    }

    /// Any request; the status and the body as text (no cookies kept, none sent but `headers`).
    static func fetch(_ url: String, method: String = "GET", body: String? = nil, headers: [String: String] = [:]) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.timeoutInterval = 60
        request.httpShouldHandleCookies = false
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await SmartProxyTests.session.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    struct Head: CustomStringConvertible {
        let status: Int
        let location: String?
        let setCookie: String?
        /// `name=value` of the Set-Cookie, as a browser would send it back.
        var cookie: String? { setCookie?.split(separator: ";").first.map(String.init) }
        var description: String { "\(status) location=\(location ?? "-") set-cookie=\(setCookie ?? "-")" }
    }

    /// A GET's answer head on a connection of its own (URLSession would follow the redirect).
    static func head(_ run: ApplianceRun, _ path: String) throws -> Head {
        let (fd, connected) = withLoopbackSocket(port: run.appliance.port) { fd, address, length in
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            return connect(fd, address, length)
        }
        defer { close(fd) }
        guard connected == 0 else { throw ApplianceProcess.Failure("connect: errno \(errno)") }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(run.appliance.port)\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(13) || String(decoding: received, as: UTF8.self).range(of: "\r\n\r\n") == nil {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            received += buffer.prefix(n)
        }
        let lines = String(decoding: received, as: UTF8.self).components(separatedBy: "\r\n")
        func field(_ name: String) -> String? {
            lines.first { $0.lowercased().hasPrefix(name + ":") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
        let status = lines.first?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return Head(status: status, location: field("location"), setCookie: field("set-cookie"))
    }
}
