import NIOCore
import XCTest

@testable import Protocol

final class ClientParserTests: XCTestCase {
    /// Parses everything in `input` fed all at once.
    private func parseAll(_ input: String, parser: ClientParser = ClientParser()) throws -> [ClientOp] {
        var parser = parser
        var buffer = ByteBuffer(string: input)
        var ops: [ClientOp] = []
        while let op = try parser.next(&buffer) { ops.append(op) }
        XCTAssertEqual(buffer.readableBytes, 0, "unconsumed bytes")
        return ops
    }

    /// Parses `input` fed one byte at a time into a growing buffer, as split reads arrive.
    private func parseByteByByte(_ input: String, parser: ClientParser = ClientParser()) throws -> [ClientOp] {
        var parser = parser
        var buffer = ByteBuffer()
        var ops: [ClientOp] = []
        for byte in Array(input.utf8) {
            buffer.writeInteger(byte)
            while let op = try parser.next(&buffer) { ops.append(op) }
        }
        XCTAssertEqual(buffer.readableBytes, 0)
        return ops
    }

    private func bytes(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    private func expectError(_ input: String, _ expected: ProtocolError, parser: ClientParser = ClientParser(),
                             file: StaticString = #filePath, line: UInt = #line) {
        for mode in ["all", "bytes"] {
            do {
                _ = mode == "all" ? try parseAll(input, parser: parser) : try parseByteByByte(input, parser: parser)
                XCTFail("expected \(expected) (\(mode))", file: file, line: line)
            } catch let error as ProtocolError {
                XCTAssertEqual(error, expected, "(\(mode))", file: file, line: line)
            } catch {
                XCTFail("unexpected \(error)", file: file, line: line)
            }
        }
    }

    static let session = "CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nSUB bar q 2\r\nPUB foo 5\r\nhello\r\n"
        + "PUB foo reply 0\r\n\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n"
        + "UNSUB 1\r\nUNSUB 2 10\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'x'\r\nINFO {}\r\n"

    static let expected: [ClientOp] = [
        .connect(ByteBuffer(string: "{\"verbose\":false}")),
        .sub(subject: ByteBuffer(string: "foo"), queue: nil, sid: ByteBuffer(string: "1")),
        .sub(subject: ByteBuffer(string: "bar"), queue: ByteBuffer(string: "q"), sid: ByteBuffer(string: "2")),
        .pub(Publish(subject: ByteBuffer(string: "foo"), reply: nil, headerLength: nil, payload: ByteBuffer(string: "hello"))),
        .pub(Publish(subject: ByteBuffer(string: "foo"), reply: ByteBuffer(string: "reply"), headerLength: nil, payload: ByteBuffer())),
        .pub(Publish(subject: ByteBuffer(string: "foo"), reply: nil, headerLength: 12, payload: ByteBuffer(string: "NATS/1.0\r\n\r\nhi"))),
        .pub(Publish(subject: ByteBuffer(string: "foo"), reply: ByteBuffer(string: "r"), headerLength: 12, payload: ByteBuffer(string: "NATS/1.0\r\n\r\n"))),
        .unsub(sid: ByteBuffer(string: "1"), max: nil),
        .unsub(sid: ByteBuffer(string: "2"), max: 10),
        .ping, .pong, .ok,
        .err(ByteBuffer(string: "'x'")),
        .info(ByteBuffer(string: "{}")),
    ]

    func testWholeSessionAllAtOnce() throws {
        XCTAssertEqual(try parseAll(Self.session, parser: ClientParser(headersEnabled: true)), Self.expected)
    }

    func testWholeSessionByteByByte() throws {
        XCTAssertEqual(try parseByteByByte(Self.session, parser: ClientParser(headersEnabled: true)), Self.expected)
    }

    func testEverySplitPointGivesTheSameOps() throws {
        let input = Array(Self.session.utf8)
        for cut in 1..<input.count {
            var parser = ClientParser(headersEnabled: true)
            var buffer = ByteBuffer(bytes: input[..<cut])
            var ops: [ClientOp] = []
            while let op = try parser.next(&buffer) { ops.append(op) }
            buffer.writeBytes(input[cut...])
            while let op = try parser.next(&buffer) { ops.append(op) }
            XCTAssertEqual(ops, Self.expected, "cut at \(cut)")
        }
    }

    func testThousandsPipelinedInOneBuffer() throws {
        let input = String(repeating: "PUB FALCO.Critical 11\r\n{\"alert\":1}\r\n", count: 5000) + "PING\r\n"
        let ops = try parseAll(input)
        XCTAssertEqual(ops.count, 5001)
        XCTAssertEqual(ops.last, .ping)
    }

    func testVerbsAreCaseInsensitiveAndTabsSeparate() throws {
        let ops = try parseAll("pub\tfoo\t1\r\nx\r\nSuB foo  q\t 7\r\nping\r\nPiNg\r\nunsub 7\r\nconnect {}\r\n")
        XCTAssertEqual(ops, [
            .pub(Publish(subject: bytes("foo"), reply: nil, headerLength: nil, payload: bytes("x"))),
            .sub(subject: bytes("foo"), queue: bytes("q"), sid: bytes("7")),
            .ping, .ping,
            .unsub(sid: bytes("7"), max: nil),
            .connect(bytes("{}")),
        ])
    }

    func testBareNewlineAndTrailingBytesAfterPing() throws {
        XCTAssertEqual(try parseAll("PING\nPING xx\r\nPONG\n"), [.ping, .ping, .pong])
    }

    func testUnknownOperationIsRejectedAtFirstBadByte() {
        expectError("FOO\r\n", .unknownOperation)
        expectError("MSG foo 1 1\r\nx\r\n", .unknownOperation)
        expectError("PUX foo 1\r\n", .unknownOperation)
        var parser = ClientParser()
        var buffer = bytes("FO")  // no newline yet: nats-server fails at 'F' already
        XCTAssertThrowsError(try parser.next(&buffer)) { XCTAssertEqual($0 as? ProtocolError, .unknownOperation) }
    }

    func testVerbWithoutRequiredBlankIsUnknown() {
        expectError("PUB\r\n", .unknownOperation)
        expectError("UNSUB\r\n", .unknownOperation)
        expectError("SUBfoo 1\r\n", .unknownOperation)
    }

    func testPayloadNotFollowedByCRLFIsUnknownOperation() {
        expectError("PUB foo 2\r\nabc\r\n", .unknownOperation)
    }

    func testMaxPayload() throws {
        let parser = ClientParser(maxPayload: 8)
        expectError("PUB foo 9\r\n", .maxPayloadViolation, parser: parser)
        expectError("HPUB foo 2 9\r\n", .maxPayloadViolation, parser: ClientParser(maxPayload: 8, headersEnabled: true))
        XCTAssertEqual(try parseAll("PUB foo 8\r\n12345678\r\n", parser: parser).count, 1)
        // Rejected as soon as the control line is complete: no need to wait for the payload.
        var p = parser
        var buffer = bytes("PUB foo 1000000\r\n")
        XCTAssertThrowsError(try p.next(&buffer)) { XCTAssertEqual($0 as? ProtocolError, .maxPayloadViolation) }
    }

    func testDefaultLimitsAreNatsServers() {
        XCTAssertEqual(Limits.defaultMaxPayload, 1_048_576)
        XCTAssertEqual(Limits.defaultMaxControlLine, 4096)
        XCTAssertEqual(Limits.defaultMaxPending, 67_108_864)
        let parser = ClientParser()
        XCTAssertEqual(parser.maxPayload, 1_048_576)
        XCTAssertEqual(parser.maxControlLine, 4096)
    }

    func testMaxControlLine() throws {
        let long = String(repeating: "a", count: 5000)
        expectError("PUB foo.\(long) 1\r\nx\r\n", .maxControlLineExceeded)
        expectError("SUB \(long) 1\r\n", .maxControlLineExceeded)
        // Also without a newline in sight: the line is already too long.
        var parser = ClientParser()
        var buffer = bytes("SUB \(long)")
        XCTAssertThrowsError(try parser.next(&buffer)) { XCTAssertEqual($0 as? ProtocolError, .maxControlLineExceeded) }
        // Exactly at the limit is fine.
        let arg = "foo " + String(repeating: "1", count: 1)
        let padded = String(repeating: "b", count: 4096 - arg.count - 1) + "." + arg
        XCTAssertEqual(try parseAll("SUB \(padded)\r\n").count, 1)
    }

    func testMalformedArgumentsCloseSilently() {
        for input in ["PUB foo\r\n", "PUB foo abc\r\n", "PUB foo a b c\r\n", "PUB foo -1\r\n", "SUB foo\r\n",
                      "SUB a b c d\r\n", "UNSUB 1 2 3\r\n"] {
            var parser = ClientParser()
            var buffer = bytes(input)
            XCTAssertThrowsError(try parser.next(&buffer), input) { error in
                guard case .protocolViolation = error as? ProtocolError else { return XCTFail("\(input): \(error)") }
                XCTAssertNil((error as? ProtocolError)?.wireText)
            }
        }
    }

    func testHeaderPublishRules() {
        expectError("HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", .protocolViolation("HPUB without headers support"))
        expectError("HPUB foo 20 10\r\n", .protocolViolation("HPUB header size larger than total size"),
                    parser: ClientParser(headersEnabled: true))
    }

    func testAuthRequiredRejectsAnythingButConnectFirst() throws {
        let parser = ClientParser(requireConnectFirst: true)
        expectError("PING\r\n", .authorizationViolation, parser: parser)
        expectError("FOO\r\n", .authorizationViolation, parser: parser)
        expectError("CXX\r\n", .unknownOperation, parser: parser)
        var p = parser
        var buffer = bytes("S")
        XCTAssertThrowsError(try p.next(&buffer)) { XCTAssertEqual($0 as? ProtocolError, .authorizationViolation) }
        XCTAssertEqual(try parseAll("CONNECT {}\r\n", parser: parser), [.connect(bytes("{}"))])
    }

    func testUnsubMaxParsesLikeNatsServer() throws {
        XCTAssertEqual(try parseAll("UNSUB 1 x\r\n"), [.unsub(sid: bytes("1"), max: -1)])
    }

    func testParseSize() {
        XCTAssertEqual(ClientParser.parseSize(bytes("0")), 0)
        XCTAssertEqual(ClientParser.parseSize(bytes("1048576")), 1_048_576)
        XCTAssertEqual(ClientParser.parseSize(bytes("")), -1)
        XCTAssertEqual(ClientParser.parseSize(bytes("+1")), -1)
        XCTAssertEqual(ClientParser.parseSize(bytes("12a")), -1)
        XCTAssertEqual(ClientParser.parseSize(bytes(String(repeating: "9", count: 30))), -1)
    }

    func testErrorTextsAreNatsServers() {
        XCTAssertEqual(ProtocolError.unknownOperation.wireText, "Unknown Protocol Operation")
        XCTAssertEqual(ProtocolError.maxPayloadViolation.wireText, "Maximum Payload Violation")
        XCTAssertEqual(ProtocolError.maxControlLineExceeded.wireText, "maximum control line exceeded")
        XCTAssertEqual(ProtocolError.authorizationViolation.wireText, "Authorization Violation")
        XCTAssertEqual(ProtocolError.authenticationTimeout.wireText, "Authentication Timeout")
        XCTAssertEqual(ProtocolError.staleConnection.wireText, "Stale Connection")
        XCTAssertEqual(ProtocolError.invalidSubject.wireText, "Invalid Subject")
        XCTAssertEqual(ProtocolError.invalidPublishSubject.wireText, "Invalid Publish Subject")
        XCTAssertFalse(ProtocolError.invalidSubject.closesConnection)
        XCTAssertFalse(ProtocolError.invalidPublishSubject.closesConnection)
        XCTAssertTrue(ProtocolError.maxPayloadViolation.closesConnection)
    }

    func testOpsAfterAnErrorAreNotConsumed() throws {
        // The parser returns the good ops before the bad one; the connection then closes.
        var parser = ClientParser()
        var buffer = bytes("PING\r\nFOO\r\n")
        XCTAssertEqual(try parser.next(&buffer), .ping)
        XCTAssertThrowsError(try parser.next(&buffer))
    }
}
