import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import VMCloud
@testable import VMCloudCore

/// docs/openapi.yaml and the router agree: every documented path and method is routed (an
/// unknown id may give our own 404, never the router's "no such route").
@Suite struct OpenAPIDocumentTests {
    static func documentedOperations() throws -> [(method: String, path: String)] {
        let text = try String(contentsOfFile: repositoryRoot + "/docs/openapi.yaml", encoding: .utf8)
        var operations: [(String, String)] = []
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("  "), !line.hasPrefix("   ") {
                path = nil
            } else if let path, let method = ["get", "post", "put", "patch", "delete"].first(where: { line == "    \($0):" }) {
                operations.append((method.uppercased(), path))
            }
        }
        return operations
    }

    @Test func everyDocumentedOperationIsRouted() async throws {
        let operations = try Self.documentedOperations()
        // Every operation line of the document, counted without the parser's path tracking: a
        // parser that lost operations would route-check fewer than there are.
        let document = try String(contentsOfFile: repositoryRoot + "/docs/openapi.yaml", encoding: .utf8)
        let operationLines = document.split(separator: "\n").filter { line in
            ["get", "post", "put", "patch", "delete"].contains { line == "    \($0):" }
        }
        #expect(operations.count == operationLines.count && operations.count >= 77, "\(operations.count) of \(operationLines.count)")
        let harness = try await APIHarness()
        try await harness.test { client in
            for (method, template) in operations {
                // Fill parameters: ids that do not exist, a valid homepage, numbers for sizes.
                let uri = template
                    .replacingOccurrences(of: "{homepage}", with: "http%3A%2F%2Fexample.test%2F")
                    .replacingOccurrences(of: "{min}", with: "0").replacingOccurrences(of: "{max}", with: "0")
                    .replacingOccurrences(of: "{linger}", with: "0").replacingOccurrences(of: "{size}", with: "1")
                    .replacingOccurrences(of: #"\{[a-z]+\}"#, with: "999999", options: .regularExpression)
                let body: ByteBuffer? = method == "PUT" ? ByteBuffer(string: #"{"min":0,"max":0,"lingerMs":0}"#)
                    : uri == "/v1/batches" ? ByteBuffer(string: #"{"size":1,"homepage":"http://example.test/"}"#) : nil
                try await client.execute(uri: uri, method: HTTPRequest.Method(method)!, body: body) { response in
                    let text = String(buffer: response.body)
                    #expect(!(response.status == .notFound && text.contains("Not Found")), "\(method) \(uri) is not routed: \(text)")
                    #expect(response.status.code < 500, "\(method) \(uri): \(response.status) \(text)")
                }
            }
        }
    }
}
