import ChildProcess
import Foundation

/// Runs a tool to completion; its standard output, or a failure naming the command.
@discardableResult
func runTool(_ tool: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    // Read to EOF before waiting: a child blocked on a full pipe would never exit.
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ApplianceProcess.Failure("\(tool) \(arguments.joined(separator: " ")) failed: \(output.suffix(2000))")
    }
    return output
}

/// Runs one of the Python scripts beside this file with Debian's Python (where apt puts
/// selenium and PIL), not whatever `python3` comes first on PATH.
func runScript(_ name: String, _ arguments: [String]) throws -> String {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(name).path
    return try runTool("/usr/bin/python3", ["-B", script] + arguments)  // -B: no __pycache__ in the test target
}

/// A script's last output line, parsed as a JSON object.
func runJSONScript(_ name: String, _ arguments: [String]) throws -> [String: Any] {
    try lastLineJSON(try runScript(name, arguments), from: name)
}

/// The last line of a script's output, parsed as a JSON object.
func lastLineJSON(_ output: String, from name: String) throws -> [String: Any] {
    let line = output.split(separator: "\n").last.map(String.init) ?? ""
    guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw ApplianceProcess.Failure("\(name) printed no JSON object: \(output.suffix(2000))")
    }
    return object
}

/// `runScript` for scripts that run for seconds: the child is awaited without holding a thread.
/// A blocking wait takes one of the few cooperative threads that this test's own polling, and the
/// suites running beside it, need (seen as timing checks failing only in the full run).
func runScriptWithoutBlocking(_ name: String, _ arguments: [String]) async throws -> String {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(name).path
    let output = NSTemporaryDirectory() + "script-\(UUID().uuidString).out"
    defer { try? FileManager.default.removeItem(atPath: output) }
    let process = try ChildProcess(executable: "/usr/bin/python3", arguments: ["-B", script] + arguments,
                                   environment: ["PATH": "/usr/bin:/bin"], outputPath: output)
    let status = await process.exit()
    let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    guard status == 0 else { throw ApplianceProcess.Failure("\(name) exited \(status): \(text.suffix(2000))") }
    return text
}
