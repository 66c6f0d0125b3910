import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension HTTPTestClient {
    /// Any method with an optional JSON body and headers; the status and the decoded answer
    /// (nil for an empty or non-JSON body). No status is required: callers check it.
    func send(_ method: String, _ path: String, _ body: Any? = nil, headers: [String: String] = [:],
              timeout: TimeInterval = 120) async throws -> (Int, Any?) {
        var request = urlRequest(method, path)
        request.timeoutInterval = timeout
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]))
    }

    /// `send`, requiring `status`, returning the answer as a JSON object.
    func object(_ method: String, _ path: String, _ body: Any? = nil, status expected: Int = 200,
                headers: [String: String] = [:]) async throws -> [String: Any] {
        let (status, answer) = try await send(method, path, body, headers: headers)
        guard status == expected, let object = answer as? [String: Any] else {
            throw ApplianceProcess.Failure("\(method) \(path): expected \(expected), got \(status) \(answer.map { "\($0)" } ?? "")")
        }
        return object
    }
}
