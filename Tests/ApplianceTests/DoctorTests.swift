import Foundation
import Testing
@testable import Appliance
@testable import VMCloud
@testable import VMCloudCore

/// `appliance doctor` against this host's real libvirt and QEMU: every check reports, the KVM
/// and TCG verdicts come from probe boots with a deadline, and broken settings fail with advice.
@Suite(.serialized) struct DoctorTests {
    static let checkNames = ["libvirt", "kvm probe boot", "tcg probe boot", "PulseAudio", "guest image",
                             "disk space", "listen 127.0.0.1:", "libvirt network default", "dnsmasq"]

    func doctor(_ extra: [String], image: String = repositoryRoot + "/images/test/out") async throws -> DoctorReport {
        let state = try makeTemporaryDirectory("doctor")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let port = Int.random(in: 40000...49000)
        let command = try DoctorCommand.parse(["--state-dir", state, "--image-dir", image, "--listen", "127.0.0.1:\(port)"] + extra)
        let report = try await command.report()
        print(report.text())
        return report
    }

    func finding(_ report: DoctorReport, _ prefix: String) throws -> DoctorFinding {
        try #require(report.findings.first { $0.check.hasPrefix(prefix) }, "no \(prefix) check in the report")
    }

    @Test func everyCheckReportsAndTheAcceleratorVerdictsComeFromProbeBoots() async throws {
        try NATNetwork.ensureActive()
        let report = try await doctor(["--probe-timeout", "15"])
        #expect(report.findings.count == Self.checkNames.count)
        for name in Self.checkNames { _ = try finding(report, name) }
        for f in report.findings where f.verdict != .ok { #expect(f.advice?.isEmpty == false, "\(f.check) has no advice") }
        // This host has everything `make setup` installs: every check but KVM must say OK.
        for name in Self.checkNames where name != "kvm probe boot" {
            let f = try finding(report, name)
            #expect(f.verdict == .ok, "\(f.check): \(f.verdict) \(f.detail)")
        }
        let tcg = try finding(report, "tcg")
        #expect(tcg.verdict == .ok, "\(tcg.detail)")
        #expect(tcg.probeDeadline == 15)
        #expect((tcg.probeSeconds ?? -1) > 0 && (tcg.probeSeconds ?? 99) < 15)
        let kvm = try finding(report, "kvm")
        // This host's KVM guests hang: a warn that names the fallback and the timeout, after the deadline.
        let seconds = try #require(kvm.probeSeconds, "the KVM verdict has no probe boot time")
        #expect(seconds < 15 + 5)
        if kvm.verdict != .ok {
            #expect(kvm.verdict == .warn, "KVM missing is a warning: guests fall back to TCG")
            #expect(kvm.detail.contains("fall back to TCG"))
            // A timeout verdict must have waited out the deadline; any other failure names itself.
            if kvm.detail.contains("(timeout)") {
                #expect(kvm.detail.contains("within 15 s (timeout)") && seconds >= 15, "\(seconds) s: \(kvm.detail)")
            }
        }
        // JSON carries the same findings.
        let decoded = try JSONDecoder().decode(DoctorReport.self, from: Data(try report.json().utf8))
        #expect(decoded.findings == report.findings)
    }

    @Test func aTinyProbeTimeoutGivesATimeoutVerdict() async throws {
        let report = try await doctor(["--probe-timeout", "0.05"])
        let tcg = try finding(report, "tcg")
        #expect(tcg.verdict == .fail)
        #expect(tcg.detail.contains("within 0.05 s (timeout)"), "\(tcg.detail)")
        #expect(tcg.advice?.contains("--probe-timeout") == true)
        #expect((tcg.probeSeconds ?? 99) < 10)
        #expect(report.worst == .fail)
    }

    @Test func aMissingImageDirectoryFailsWithAdvice() async throws {
        let report = try await doctor(["--probe-timeout", "5"], image: "/nonexistent/vmcloud-image")
        let image = try finding(report, "guest image")
        #expect(image.verdict == .fail)
        #expect(image.detail.contains("/nonexistent/vmcloud-image"))
        #expect(image.advice?.contains("make image") == true)
        #expect(try finding(report, "kvm").verdict == .fail)
        #expect(report.worst == .fail)
    }

    @Test func aBogusLibvirtURIFails() async throws {
        let report = try await doctor(["--probe-timeout", "5", "--libvirt-uri", "qemu+unix:///system?socket=/nonexistent/libvirt-sock"])
        let libvirt = try finding(report, "libvirt")
        #expect(libvirt.verdict == .fail)
        #expect(libvirt.advice?.contains("--libvirt-uri") == true)
        #expect(try finding(report, "libvirt network").verdict == .fail)
        #expect(try finding(report, "tcg").verdict == .fail)
    }

    @Test func aPortHeldByAnotherProgramFails() async throws {
        let port = Int.random(in: 49001...50000)
        let (fd, bound) = withLoopbackSocket(port: port) { bind($0, $1, $2) }
        defer { close(fd) }
        try #require(bound == 0 && listen(fd, 1) == 0)
        let finding = await ListenPortCheck(host: "127.0.0.1", port: port).run()
        #expect(finding.verdict == .fail)
        #expect(finding.advice?.contains("--listen") == true)
    }

    /// A network that is not defined fails (serve could not put guests on it); a missing
    /// dhcp_release is a warning with the package to install.
    @Test func anUndefinedNetworkFailsAndAMissingReleaseToolWarns() async throws {
        let network = await NATNetworkCheck(libvirtURI: "qemu:///system", network: "vmcloud-no-such-net").run()
        #expect(network.verdict == .fail && network.advice?.contains("net-define") == true, "\(network)")
        let dnsmasq = await DnsmasqCheck(releaseTool: "/nonexistent/dhcp_release").run()
        #expect(dnsmasq.verdict == .warn && dnsmasq.advice == "apt-get install dnsmasq-utils", "\(dnsmasq)")
    }
}
