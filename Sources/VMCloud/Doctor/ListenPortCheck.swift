import Foundation
#if canImport(Glibc)
import Glibc
import VMCloudCore
#endif

/// Whether `serve --listen` can bind: free, held by a running appliance (fine: it is this
/// service), or held by something else.
struct ListenPortCheck: DoctorCheck {
    let host: String
    let port: Int
    var name: String { "listen \(host):\(port)" }

    func run() async -> DoctorFinding {
        switch Self.tryBind(host: host, port: port) {
        case .free:
            return DoctorFinding(check: name, verdict: .ok, detail: "port \(port) is free")
        case .error(let why):
            return DoctorFinding(check: name, verdict: .fail, detail: "cannot bind \(host):\(port): \(why)", advice: "pass another --listen HOST:PORT")
        case .inUse:
            if await Self.isAppliance(port: port) {
                return DoctorFinding(check: name, verdict: .ok, detail: "port \(port) is held by a running appliance (its API answers)")
            }
            return DoctorFinding(check: name, verdict: .fail, detail: "port \(port) is held by another program",
                                 advice: "find it with `ss -ltnp 'sport = :\(port)'` and stop it, or pass another --listen HOST:PORT")
        }
    }

    enum BindResult: Equatable { case free, inUse, error(String) }

    static func tryBind(host: String, port: Int) -> BindResult {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .error(String(cString: strerror(errno))) }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return .error("'\(host)' is not an IPv4 address") }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { return .free }
        return errno == EADDRINUSE ? .inUse : .error(String(cString: strerror(errno)))
    }

    /// An appliance serves its OpenAPI document at /v1/openapi.yaml.
    static func isAppliance(port: Int) async -> Bool {
        guard let output = try? await runTool("/usr/bin/curl", ["-s", "-m", "3", "http://127.0.0.1:\(port)/v1/openapi.yaml"]) else { return false }
        return output.contains("vmcloud")
    }
}
