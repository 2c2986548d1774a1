import NIOCore
import Foundation
import XCTest

@testable import Protocol

final class ServerEncoderTests: XCTestCase {
    func testMsgAndHmsg() {
        var out = ByteBuffer()
        ServerEncoder.writeMessage(into: &out, subject: ByteBuffer(string: "FALCO.Critical"), sid: ByteBuffer(string: "7"),
                                   reply: nil, headerLength: nil, payload: ByteBuffer(string: "hello"))
        ServerEncoder.writeMessage(into: &out, subject: ByteBuffer(string: "foo"), sid: ByteBuffer(string: "12"),
                                   reply: ByteBuffer(string: "_INBOX.x"), headerLength: 12,
                                   payload: ByteBuffer(string: "NATS/1.0\r\n\r\nhi"))
        ServerEncoder.writeMessage(into: &out, subject: ByteBuffer(string: "e"), sid: ByteBuffer(string: "1"),
                                   reply: nil, headerLength: nil, payload: ByteBuffer())
        XCTAssertEqual(String(buffer: out),
                       "MSG FALCO.Critical 7 5\r\nhello\r\nHMSG foo 12 _INBOX.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG e 1 0\r\n\r\n")
    }

    func testDecimal() {
        for value in [0, 9, 10, 99, 100, 1_048_576, Int(Int32.max)] {
            var out = ByteBuffer()
            ServerEncoder.writeDecimal(into: &out, value)
            XCTAssertEqual(String(buffer: out), String(value))
        }
    }

    func testControlLines() {
        var out = ByteBuffer()
        ServerEncoder.writeError(into: &out, "Unknown Protocol Operation")
        ServerEncoder.writeOK(into: &out)
        ServerEncoder.writePing(into: &out)
        ServerEncoder.writePong(into: &out)
        ServerEncoder.writeInfo(into: &out, json: "{}")
        XCTAssertEqual(String(buffer: out), "-ERR 'Unknown Protocol Operation'\r\n+OK\r\nPING\r\nPONG\r\nINFO {} \r\n")
    }

    func testConnectDefaultsAreNatsServers() throws {
        let empty = try ConnectOptions.decode(ByteBuffer(string: "{}"))
        XCTAssertTrue(empty.verbose)
        XCTAssertTrue(empty.pedantic)
        XCTAssertTrue(empty.echo)
        XCTAssertFalse(empty.headers)
        XCTAssertFalse(empty.noResponders)
        let full = try ConnectOptions.decode(ByteBuffer(string:
            #"{"verbose":false,"pedantic":false,"echo":false,"headers":true,"no_responders":true,"user":"u","pass":"p","auth_token":"t","name":"n","lang":"python3","version":"2.16.0","protocol":1}"#))
        XCTAssertEqual(full.user, "u")
        XCTAssertEqual(full.authToken, "t")
        XCTAssertTrue(full.noResponders)
        XCTAssertFalse(full.echo)
        XCTAssertEqual(full.protocolVersion, 1)
        XCTAssertThrowsError(try ConnectOptions.decode(ByteBuffer(string: "{bad")))
    }

    func testInfoJSONFields() throws {
        let info = ServerInfo(serverID: "NABC", serverName: "n", version: "2.10.0", host: "127.0.0.1", port: 4222,
                              authRequired: true, maxPayload: 1_048_576, clientID: 5, clientIP: "127.0.0.1", brokerdVersion: "0.1.0")
        let object = try JSONSerialization.jsonObject(with: Data(info.json().utf8)) as? [String: Any]
        XCTAssertEqual(object?["server_id"] as? String, "NABC")
        XCTAssertEqual(object?["proto"] as? Int, 1)
        XCTAssertEqual(object?["headers"] as? Bool, true)
        XCTAssertEqual(object?["auth_required"] as? Bool, true)
        XCTAssertEqual(object?["max_payload"] as? Int, 1_048_576)
        XCTAssertEqual(object?["client_id"] as? Int, 5)
        XCTAssertEqual(object?["brokerd_version"] as? String, "0.1.0")
        let open = ServerInfo(serverID: "N", serverName: "n", version: "2.10.0", host: "h", port: 1, authRequired: false,
                              maxPayload: 1, clientID: 1, clientIP: "", brokerdVersion: "0")
        XCTAssertFalse(open.json().contains("auth_required"))
    }
}
