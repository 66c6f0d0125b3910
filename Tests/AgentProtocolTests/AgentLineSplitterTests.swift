// Line framing over a byte stream that arrives in arbitrary chunks.
import Testing
@testable import AgentProtocol

@Suite struct AgentLineSplitterTests {
    @Test func splitsSeveralLinesInOneChunk() {
        var splitter = AgentLineSplitter()
        #expect(splitter.append(bytes("a\nbc\n\nd")) == [.line(bytes("a")), .line(bytes("bc")), .line([])])
        // "d" waits for its newline.
        #expect(splitter.append(bytes("e\n")) == [.line(bytes("de"))])
        #expect(splitter.append([]) == [])
    }

    @Test func reassemblesLinesAcrossEveryChunkBoundary() throws {
        let stream = allKinds.flatMap { sample($0).encodedLine() }
        for chunkSize in [1, 2, 3, 7, 64, 1000, stream.count] {
            var splitter = AgentLineSplitter()
            var items: [AgentLineSplitter.Item] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + chunkSize, stream.count)
                items += splitter.append(stream[offset..<end])
                offset = end
            }
            let decoded = try items.map { item -> AgentMessage in
                guard case .line(let line) = item else { throw AgentProtocolError.invalid("unexpected \(item)") }
                return try AgentMessage.decode(line: line)
            }
            #expect(decoded == allKinds.map(sample), "chunk size \(chunkSize)")
        }
    }

    @Test func lineOfExactlyTheLimitIsKept() {
        var splitter = AgentLineSplitter()
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: agentMaxLineBytes)
        #expect(splitter.append(line + [UInt8(ascii: "\n")]) == [.line(line)])
    }

    @Test func overlongLineIsReportedOnceThenTheNextLineParses() throws {
        var splitter = AgentLineSplitter()
        let length = agentMaxLineBytes * 3 + 5
        var items: [AgentLineSplitter.Item] = []
        // Fed in pieces so the discarding state has to survive chunk boundaries.
        var remaining = length
        while remaining > 0 {
            let n = min(remaining, 10_000)
            items += splitter.append([UInt8](repeating: UInt8(ascii: "y"), count: n))
            remaining -= n
        }
        #expect(items.isEmpty)
        items += splitter.append(bytes("\n") + sample(.ping).encodedLine())
        #expect(items.count == 2)
        #expect(items.first == .tooLong(length))
        guard case .line(let next) = items.last else {
            Issue.record("expected a line after the over-long one")
            return
        }
        #expect(try AgentMessage.decode(line: next) == sample(.ping))
    }

    @Test func overlongByOneByte() {
        var splitter = AgentLineSplitter()
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: agentMaxLineBytes + 1)
        #expect(splitter.append(line + bytes("\nok\n")) == [.tooLong(agentMaxLineBytes + 1), .line(bytes("ok"))])
    }
}
