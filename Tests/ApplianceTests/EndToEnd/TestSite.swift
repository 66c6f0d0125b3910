import Foundation

/// Web pages for the browser in a VM, served from the host by Python's http.server on loopback
/// (user-mode networking shows the host's loopback to the guest as 10.0.2.2).
final class TestSite: @unchecked Sendable {
    let port: Int
    private let directory: String
    private let process = Process()

    /// The address a guest uses.
    var guestBase: String { "http://10.0.2.2:\(port)" }

    /// The first page writes the value of the cookie `color` into its text and paints its
    /// background with it, so that both the captured MHTML and the VM's screen show it.
    static let index = """
        <!doctype html><html><head><title>Cookie page</title></head>
        <body style="margin:0;height:100vh">
        <p id="v">reading cookie</p>
        <p><a id="next" href="/second.html">to the second page</a></p>
        <script>
        var m = document.cookie.match(/(?:^|; )color=([0-9a-f]{6})/);
        document.getElementById("v").textContent = "cookie-value:" + (m ? m[1] : "none");
        document.body.style.background = m ? "#" + m[1] : "#ffffff";
        </script></body></html>
        """
    static let second = """
        <!doctype html><html><head><title>Second page</title></head>
        <body><p>second-page-text</p></body></html>
        """

    init() throws {
        port = try ApplianceProcess.freePort()
        directory = try makeTemporaryDirectory("site")
        try Self.index.write(toFile: directory + "/index.html", atomically: true, encoding: .utf8)
        try Self.second.write(toFile: directory + "/second.html", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Decodes quoted-printable (MHTML bodies): soft line breaks and =XX escapes.
func decodeQuotedPrintable(_ text: String) -> String {
    var bytes: [UInt8] = []
    let source = Array(text.replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=\n", with: "").utf8)
    var i = 0
    while i < source.count {
        if source[i] == UInt8(ascii: "="), i + 2 < source.count,
           let value = UInt8(String(decoding: source[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
            bytes.append(value)
            i += 3
        } else {
            bytes.append(source[i])
            i += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The share of a VM screen's pixels (from `virsh screenshot`, PPM) close to a colour.
func screenShare(domain: String, color: (UInt8, UInt8, UInt8), directory: String) throws -> Double {
    let path = directory + "/screen.ppm"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/virsh")
    process.arguments = ["-c", "qemu:///system", "screenshot", domain, path]
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    // P6 header: magic, width, height, maxval, each followed by whitespace.
    var fields: [String] = []
    var index = 0
    while fields.count < 4, index < data.count {
        var field = ""
        while index < data.count, !(data[index] == 0x20 || data[index] == 0x0a) {
            field.append(Character(UnicodeScalar(data[index])))
            index += 1
        }
        index += 1
        if !field.isEmpty { fields.append(field) }
    }
    guard fields.first == "P6", fields.count == 4, let width = Int(fields[1]), let height = Int(fields[2]) else {
        throw ApplianceProcess.Failure("virsh screenshot did not give a P6 PPM")
    }
    var close = 0
    for pixel in 0..<(width * height) {
        let offset = index + pixel * 3
        guard offset + 2 < data.count else { break }
        if abs(Int(data[offset]) - Int(color.0)) < 24, abs(Int(data[offset + 1]) - Int(color.1)) < 24,
           abs(Int(data[offset + 2]) - Int(color.2)) < 24 { close += 1 }
    }
    return Double(close) / Double(width * height)
}
