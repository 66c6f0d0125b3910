import AgentProtocol
import Foundation
import VMCloudCore

/// `appliance serve`'s settings: defaults, overridden by a JSON config file, overridden by flags.
package struct ServeConfig: Equatable, Sendable {
    package init() {}

    package var listenHost = "0.0.0.0"
    package var listenPort = 8080
    package var stateDir = "/var/lib/appliance"
    package var libvirtURI = "qemu:///system"
    var accel: AcceleratorChoice = .auto
    /// nil: `<stateDir>/image`, the image `make serve` builds.
    package var image: String?
    package var memoryMiB = 2048
    package var vcpus = 2
    /// How guests reach the network: libvirt's NAT network "default" (started if needed), or
    /// QEMU's user-mode networking (no host setup; the host's loopback is 10.0.2.2 in the guest).
    var network: GuestNetwork = .nat
    package var bootTimeout: Double = 300
    package var agentTimeout: Double = 60
    package var logLevel = "info"
    /// Cookies for batches made through the seed's prepare-batch (which cannot pass any).
    package var defaultCookies: [Cookie] = []
    /// Base of the viewer links (scheme://host[:port], no trailing slash); nil: from each
    /// request's Host header.
    package var publicURL: String?
    /// Whether VMs get a sound card whose output the audio relay streams (needs PulseAudio).
    package var audio = true
    /// Seconds between the VM engine's passes when nothing triggers one (it also runs on every
    /// API change, guest hello and libvirt event, and when a linger or boot timeout ends).
    package var reconcileInterval: Double = 5
    /// Networks whose unauthenticated calls to the six vmcloud endpoints are allowed.
    var trustedNetworks: TrustedNetworks = .loopback
    /// Seconds a smart proxy request waits for its resource's VM to start and answer.
    package var proxyStartTimeout: Double = 120
    /// Seconds the smart proxy waits for an upstream's response head and between body reads.
    package var proxyUpstreamTimeout: Double = 60

    package var imageDirectory: String { image ?? StateDirectory(root: stateDir).defaultImage }

    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
    }

    /// The keys a config file may hold (each mirrors a flag).
    package static var fileKeys: [String] { File.CodingKeys.allCases.map(\.stringValue) }

    /// The config file's shape; JSONDecoder checks each value's type.
    private struct File: Decodable {
        var listen: String?
        var stateDir: String?
        var libvirtURI: String?
        var accel: String?
        var image: String?
        var memoryMiB: Int?
        var vcpus: Int?
        var bootTimeout: Double?
        var agentTimeout: Double?
        var logLevel: String?
        var defaultCookies: [Cookie]?
        var network: String?
        var publicURL: String?
        var audio: Bool?
        var reconcileInterval: Double?
        var trustedNetworks: [String]?
        var proxyStartTimeout: Double?
        var proxyUpstreamTimeout: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case listen, stateDir, libvirtURI, accel, image, memoryMiB, vcpus, bootTimeout, agentTimeout, logLevel
            case defaultCookies, network, publicURL, audio, reconcileInterval, trustedNetworks
            case proxyStartTimeout, proxyUpstreamTimeout
        }
    }

    /// Applies a JSON config file. Unknown keys and wrong types are errors, not silently ignored.
    package mutating func apply(file path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Invalid(description: "cannot read config file \(path): \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Invalid(description: "config file \(path) is not a JSON object")
        }
        for key in object.keys.sorted() where !Self.fileKeys.contains(key) {
            throw Invalid(description: "config file \(path): unknown key '\(key)' (known: \(Self.fileKeys.joined(separator: ", ")))")
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch DecodingError.typeMismatch(let type, let context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw Invalid(description: "config file \(path): '\(key)' must be a \(type == String.self ? "string" : type == Bool.self ? "boolean" : "number")")
        } catch {
            throw Invalid(description: "config file \(path): \(error)")
        }
        if let v = file.listen { try setListen(v) }
        if let v = file.stateDir { stateDir = v }
        if let v = file.libvirtURI { libvirtURI = v }
        if let v = file.accel { try setAccel(v) }
        if let v = file.image { image = v }
        if let v = file.memoryMiB { memoryMiB = v }
        if let v = file.vcpus { vcpus = v }
        if let v = file.bootTimeout { bootTimeout = v }
        if let v = file.agentTimeout { agentTimeout = v }
        if let v = file.logLevel { logLevel = v }
        if let v = file.network { try setNetwork(v) }
        if let v = file.publicURL { try setPublicURL(v) }
        if let v = file.audio { audio = v }
        if let v = file.reconcileInterval { reconcileInterval = v }
        if let v = file.trustedNetworks { try setTrustedNetworks(v) }
        if let v = file.proxyStartTimeout { proxyStartTimeout = v }
        if let v = file.proxyUpstreamTimeout { proxyUpstreamTimeout = v }
        if let v = file.defaultCookies {
            do { defaultCookies = try InputValidation.cookies(v) } catch let error as APIError {
                throw Invalid(description: "config file \(path): defaultCookies: \(error.message)")
            }
        }
    }

    package mutating func setListen(_ value: String) throws {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw Invalid(description: "listen address must be HOST:PORT, got '\(value)'")
        }
        var host = String(value[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        listenHost = host.isEmpty ? "0.0.0.0" : host
        listenPort = port
    }

    package mutating func setPublicURL(_ value: String) throws {
        let trimmed = value.hasSuffix("/") ? String(value.dropLast()) : value
        guard let url = URL(string: trimmed), ["http", "https"].contains(url.scheme ?? ""), url.host != nil,
              url.query == nil, url.fragment == nil else {
            throw Invalid(description: "public URL must be http(s)://HOST[:PORT][/PATH], got '\(value)'")
        }
        publicURL = trimmed
    }

    package mutating func setTrustedNetworks(_ entries: [String]) throws {
        do { trustedNetworks = try TrustedNetworks(entries) } catch let error as TrustedNetworks.Invalid {
            throw Invalid(description: error.description)
        }
    }

    package mutating func setNetwork(_ value: String) throws {
        guard let choice = GuestNetwork(rawValue: value) else {
            throw Invalid(description: "network must be nat or user, got '\(value)'")
        }
        network = choice
    }

    package mutating func setAccel(_ value: String) throws {
        guard let choice = AcceleratorChoice(rawValue: value) else {
            throw Invalid(description: "accel must be kvm, tcg or auto, got '\(value)'")
        }
        accel = choice
    }

    /// Checks ranges once everything is merged.
    package func validate() throws {
        guard (64...1_048_576).contains(memoryMiB) else { throw Invalid(description: "memory must be 64..1048576 MiB, got \(memoryMiB)") }
        guard (1...256).contains(vcpus) else { throw Invalid(description: "vcpus must be 1..256, got \(vcpus)") }
        guard bootTimeout > 0, agentTimeout > 0 else { throw Invalid(description: "timeouts must be positive") }
        guard (0.1...3600).contains(reconcileInterval) else { throw Invalid(description: "reconcile interval must be 0.1..3600 s, got \(reconcileInterval)") }
        guard (1...3600).contains(proxyStartTimeout) else { throw Invalid(description: "proxy start timeout must be 1..3600 s, got \(proxyStartTimeout)") }
        guard (1...3600).contains(proxyUpstreamTimeout) else { throw Invalid(description: "proxy upstream timeout must be 1..3600 s, got \(proxyUpstreamTimeout)") }
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw Invalid(description: "log level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }
}
