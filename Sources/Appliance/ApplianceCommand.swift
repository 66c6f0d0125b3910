import ArgumentParser

@main
struct ApplianceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "appliance",
        abstract: "vmcloud: a pool of browser VMs on one Linux host, served over a REST API.",
        discussion: """
            `appliance serve` keeps a pool of KVM/QEMU guests through libvirt and hands them to \
            applications through the vmcloud API (see README.md and docs/openapi.yaml).
            """,
        subcommands: [ServeCommand.self, ImageCommand.self, VNCProxyCommand.self, AudioRelayCommand.self, BenchCommand.self, DoctorCommand.self, InstallCommand.self]
    )
}
