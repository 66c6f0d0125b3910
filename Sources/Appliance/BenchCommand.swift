import ArgumentParser
import Foundation
import VMCloud
import VMCloudCore

/// `appliance bench ...`: benchmarks that need the appliance's own types.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks of the appliance's parts (see bench/).",
        subcommands: [ReconcileBenchCommand.self])
}

/// The VM engine at scale on libvirt's test driver (real libvirt code, no guests):
/// N generic VMs started, steady passes timed, domains killed behind its back and replaced.
/// The baseline is what a poller without one listing would do: a libvirt state call per VM.
struct ReconcileBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Time reconcile passes over many generic VMs on test:///default.")

    @Option(help: "Generic VMs to create.") var vms = 1000
    @Option(help: "Steady passes to time.") var passes = 30
    @Option(help: "Domains to destroy behind the engine's back.") var kill = 100
    @Option(help: "Write RESULTS.md and results.json into this directory.") var out: String?

    func run() async throws {
        let result = try await ReconcileBench(vms: vms, passes: passes, kill: kill).run()
        let markdown = result.markdown
        print(markdown)
        if let out {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try markdown.write(toFile: out + "/RESULTS.md", atomically: true, encoding: .utf8)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: out + "/results.json"))
        }
    }
}
