import NIOCore
import XCTest

@testable import Protocol

final class ServerParserTests: XCTestCase {
    static let stream = "INFO {\"server_id\":\"N1\",\"max_payload\":1048576} \r\n+OK\r\nPING\r\nPONG\r\n"
        + "MSG FALCO.Critical 7 5\r\nhello\r\nMSG a 1 _INBOX.x 0\r\n\r\n"
        + "HMSG inbox 3 16 16\r\nNATS/1.0 503\r\n\r\n\r\nHMSG h 2 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
        + "-ERR 'Authorization Violation'\r\n"

    static let expected: [ServerOp] = [
        .info(ByteBuffer(string: "{\"server_id\":\"N1\",\"max_payload\":1048576}")),
        .ok, .ping, .pong,
        .msg(ServerMessage(subject: ByteBuffer(string: "FALCO.Critical"), sid: 7, reply: nil, headerLength: nil,
                           payload: ByteBuffer(string: "hello"))),
        .msg(ServerMessage(subject: ByteBuffer(string: "a"), sid: 1, reply: ByteBuffer(string: "_INBOX.x"), headerLength: nil,
                           payload: ByteBuffer())),
        .msg(ServerMessage(subject: ByteBuffer(string: "inbox"), sid: 3, reply: nil, headerLength: 16,
                           payload: ByteBuffer(string: "NATS/1.0 503\r\n\r\n"))),
        .msg(ServerMessage(subject: ByteBuffer(string: "h"), sid: 2, reply: ByteBuffer(string: "r"), headerLength: 12,
                           payload: ByteBuffer(string: "NATS/1.0\r\n\r\nhi"))),
        .err("Authorization Violation"),
    ]

    func testAllAtOnce() throws {
        var parser = ServerParser()
        var buffer = ByteBuffer(string: Self.stream)
        var ops: [ServerOp] = []
        while let op = try parser.next(&buffer) { ops.append(op) }
        XCTAssertEqual(ops, Self.expected)
        XCTAssertEqual(buffer.readableBytes, 0)
    }

    func testEverySplitPoint() throws {
        let bytes = Array(Self.stream.utf8)
        for cut in 1..<bytes.count {
            var parser = ServerParser()
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            var ops: [ServerOp] = []
            while let op = try parser.next(&buffer) { ops.append(op) }
            buffer.writeBytes(bytes[cut...])
            while let op = try parser.next(&buffer) { ops.append(op) }
            XCTAssertEqual(ops, Self.expected, "cut at \(cut)")
        }
    }

    func testMalformed() {
        for bad in ["MSG a\r\n", "MSG a x 1\r\nx\r\n", "HMSG a 1 5 2\r\n", "MSG a 1 1\r\nxy\r\n", "WHAT\r\n"] {
            var parser = ServerParser()
            var buffer = ByteBuffer(string: bad)
            XCTAssertThrowsError(try { while try parser.next(&buffer) != nil {} }(), bad)
        }
    }

    func testClientEncoder() {
        var out = ByteBuffer()
        ClientEncoder.writePublish(into: &out, subject: "FALCO.Critical", reply: nil, headers: nil, payload: ByteBuffer(string: "x"))
        ClientEncoder.writePublish(into: &out, subject: "s", reply: "r", headers: ByteBuffer(string: "NATS/1.0\r\n\r\n"),
                                   payload: ByteBuffer(string: "hi"))
        ClientEncoder.writeSubscribe(into: &out, subject: "FALCO.*", queue: "q", sid: 12)
        ClientEncoder.writeUnsubscribe(into: &out, sid: 12, max: 5)
        ClientEncoder.writeConnect(into: &out, json: "{}")
        XCTAssertEqual(String(buffer: out),
                       "PUB FALCO.Critical 1\r\nx\r\nHPUB s r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nSUB FALCO.* q 12\r\nUNSUB 12 5\r\nCONNECT {}\r\n")
        // What the client encodes, the server-side parser reads back.
        var parser = ClientParser(headersEnabled: true)
        var ops: [ClientOp] = []
        while let op = try? parser.next(&out) { ops.append(op) }
        XCTAssertEqual(ops.count, 5)
    }
}
