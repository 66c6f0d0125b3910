import Foundation

/// `appliance serve`'s settings: defaults, overridden by a JSON config file, overridden by flags.
struct ServeConfig: Equatable, Sendable {
    var listenHost = "0.0.0.0"
    var listenPort = 8080
    var stateDir = "/var/lib/appliance"
    var libvirtURI = "qemu:///system"
    var accel: AcceleratorChoice = .auto
    /// nil: `<stateDir>/image`, the image `make serve` builds.
    var image: String?
    var memoryMiB = 2048
    var vcpus = 2
    var bootTimeout: Double = 300
    var agentTimeout: Double = 60
    var logLevel = "info"

    var imageDirectory: String { image ?? stateDir + "/image" }

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// The keys a config file may hold, with the flag each one mirrors.
    static let fileKeys = [
        "listen", "stateDir", "libvirtURI", "accel", "image", "memoryMiB", "vcpus", "bootTimeout", "agentTimeout", "logLevel",
    ]

    /// Applies a JSON config file. Unknown keys and wrong types are errors, not silently ignored.
    mutating func apply(file path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Invalid(description: "cannot read config file \(path): \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Invalid(description: "config file \(path) is not a JSON object")
        }
        for key in object.keys where !Self.fileKeys.contains(key) {
            throw Invalid(description: "config file \(path): unknown key '\(key)' (known: \(Self.fileKeys.joined(separator: ", ")))")
        }
        func string(_ key: String) throws -> String? {
            guard let value = object[key] else { return nil }
            guard let s = value as? String else { throw Invalid(description: "config file \(path): '\(key)' must be a string") }
            return s
        }
        func number(_ key: String) throws -> Double? {
            guard let value = object[key] else { return nil }
            guard let n = value as? NSNumber, !(value is Bool) else {
                throw Invalid(description: "config file \(path): '\(key)' must be a number")
            }
            return n.doubleValue
        }
        if let v = try string("listen") { try setListen(v) }
        if let v = try string("stateDir") { stateDir = v }
        if let v = try string("libvirtURI") { libvirtURI = v }
        if let v = try string("accel") { try setAccel(v) }
        if let v = try string("image") { image = v }
        if let v = try number("memoryMiB") { memoryMiB = Int(v) }
        if let v = try number("vcpus") { vcpus = Int(v) }
        if let v = try number("bootTimeout") { bootTimeout = v }
        if let v = try number("agentTimeout") { agentTimeout = v }
        if let v = try string("logLevel") { logLevel = v }
    }

    mutating func setListen(_ value: String) throws {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw Invalid(description: "listen address must be HOST:PORT, got '\(value)'")
        }
        var host = String(value[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        listenHost = host.isEmpty ? "0.0.0.0" : host
        listenPort = port
    }

    mutating func setAccel(_ value: String) throws {
        guard let choice = AcceleratorChoice(rawValue: value) else {
            throw Invalid(description: "accel must be kvm, tcg or auto, got '\(value)'")
        }
        accel = choice
    }

    /// Checks ranges once everything is merged.
    func validate() throws {
        guard (64...1_048_576).contains(memoryMiB) else { throw Invalid(description: "memory must be 64..1048576 MiB, got \(memoryMiB)") }
        guard (1...256).contains(vcpus) else { throw Invalid(description: "vcpus must be 1..256, got \(vcpus)") }
        guard bootTimeout > 0, agentTimeout > 0 else { throw Invalid(description: "timeouts must be positive") }
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw Invalid(description: "log level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }
}
