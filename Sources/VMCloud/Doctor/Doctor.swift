import Foundation

/// `appliance doctor`: every host check for a serve configuration, run one after another (the
/// two probe boots should not compete for the CPU).
package enum Doctor {
    package static func checks(settings: ServeConfig, probeTimeout: Double) -> [any DoctorCheck] {
        let image = settings.imageDirectory
        return [
            LibvirtReachableCheck(uri: settings.libvirtURI),
            ProbeBootCheck(accelerator: .kvm, libvirtURI: settings.libvirtURI, imageDirectory: image, deadline: probeTimeout),
            ProbeBootCheck(accelerator: .tcg, libvirtURI: settings.libvirtURI, imageDirectory: image, deadline: probeTimeout),
            PulseAudioCheck(stateDir: settings.stateDir),
            GuestImageCheck(directory: image),
            DiskSpaceCheck(stateDir: settings.stateDir),
            ListenPortCheck(host: settings.listenHost, port: settings.listenPort),
            NATNetworkCheck(libvirtURI: settings.libvirtURI),
            DnsmasqCheck(),
        ]
    }

    package static func report(_ checks: [any DoctorCheck]) async -> DoctorReport {
        var report = DoctorReport(findings: [])
        for check in checks { report.findings.append(await check.run()) }
        return report
    }
}
