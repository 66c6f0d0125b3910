import ArgumentParser
import Foundation
import VMCloud
import VMCloudCore

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check that this host can run the appliance; each finding says what to do about it.",
        discussion: """
            Checks libvirt, KVM and TCG (each by booting a probe guest with a deadline), \
            PulseAudio, the guest image, disk space, the listen port, libvirt's NAT network and \
            dnsmasq. Exits 1 when any check fails (warnings do not).
            """
    )

    @Option(help: "A serve config file to take the settings below from (flags still win).")
    var config: String?

    @Option(help: "The state directory serve would use. (default: /var/lib/appliance)")
    var stateDir: String?

    @Option(help: "libvirt connection URI. (default: qemu:///system)")
    var libvirtURI: String?

    @Option(help: "Guest image directory. (default: <state-dir>/image)")
    var imageDir: String?

    @Option(help: "Address serve would listen on, HOST:PORT. (default: 0.0.0.0:8080)")
    var listen: String?

    @Option(help: "Seconds each probe guest may take to print its kernel banner.")
    var probeTimeout: Double = 20

    @Flag(help: "Print the report as JSON.")
    var json = false

    func checks() throws -> [any DoctorCheck] {
        var settings = ServeConfig()
        if let config { try settings.apply(file: config) }
        if let stateDir { settings.stateDir = stateDir }
        if let libvirtURI { settings.libvirtURI = libvirtURI }
        if let imageDir { settings.image = imageDir }
        if let listen { try settings.setListen(listen) }
        guard probeTimeout > 0 else { throw ValidationError("--probe-timeout must be positive") }
        return Doctor.checks(settings: settings, probeTimeout: probeTimeout)
    }

    func report() async throws -> DoctorReport {
        await Doctor.report(try checks())
    }

    func run() async throws {
        let report = try await report()
        print(json ? try report.json() : report.text())
        if report.worst == .fail { throw ExitCode(1) }
    }
}
