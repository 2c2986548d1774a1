import Foundation
import XCTest
@testable import NATSConfig

/// The structure of a config file: entries, maps, arrays, and their syntax errors (`ConfigParser`).
final class ConfigParserTests: ConfigTestCase {
    func testNestedMapsKeepOrderAndLines() throws {
        let map = try parse("""
            authorization {
              user: alice
              password = "pw"
              inner { depth: 2 }
            }
            next: true
            """)
        guard case .map(let auth) = map["authorization"] else { return XCTFail("not a map") }
        XCTAssertEqual(auth.keys, ["user", "password", "inner"])
        XCTAssertEqual(auth["user"], .string("alice"))
        XCTAssertEqual(auth.entry("password")?.line, 3)
        guard case .map(let inner) = auth["inner"] else { return XCTFail("not a map") }
        XCTAssertEqual(inner["depth"], .integer(2))
        XCTAssertEqual(map["next"], .bool(true))
    }

    func testBraceOnNextLineAndMapsWithoutSeparator() throws {
        let map = try parse("""
            authorization
            {
              token: abc
            }
            tags
            [ a, b ]
            cluster{name: x}
            """)
        XCTAssertEqual(map.keys, ["authorization", "tags", "cluster"])
        XCTAssertEqual(map["tags"], .array([.string("a"), .string("b")]))
    }

    func testArraysWithCommasNewlinesAndComments() throws {
        let map = try parse("""
            a: [1, 2, 3]
            b: [
              "x"   # first
              'y',
              z,    // last; a trailing comma is allowed
            ]
            c: [ { name: one }, [true, off] ]
            d: []
            """)
        XCTAssertEqual(map["a"], .array([.integer(1), .integer(2), .integer(3)]))
        XCTAssertEqual(map["b"], .array([.string("x"), .string("y"), .string("z")]))
        XCTAssertEqual(map["c"], .array([
            .map(ConfigMap([.init(key: "name", value: .string("one"), file: "brokerd.conf", line: 7)])),
            .array([.bool(true), .bool(false)]),
        ]))
        XCTAssertEqual(map["d"], .array([]))
    }

    func testTopLevelBracesAndJSONStyle() throws {
        let map = try parse(#"{"port": 4222, "debug": true, "authorization": {"token": "t"}}"#)
        XCTAssertEqual(map["port"], .integer(4222))
        XCTAssertEqual(map["debug"], .bool(true))
        XCTAssertEqual(parseError("{ port: 1 }\nhost: x"), "brokerd.conf:2: unexpected 'h' after the closing '}' of the top-level block")
    }

    func testUnbalancedBracesAndBrackets() {
        XCTAssertEqual(parseError("port: 1\nauthorization {\n  user: a\n"),
                       "brokerd.conf:2: unbalanced braces: this '{' is never closed")
        XCTAssertEqual(parseError("port: 1\n}\n"), "brokerd.conf:2: unbalanced braces: '}' without a matching '{'")
        XCTAssertEqual(parseError("port: 1 }"), "brokerd.conf:1: unbalanced braces: '}' without a matching '{'")
        XCTAssertEqual(parseError("a: [1, 2\nb: 3"),
                       "brokerd.conf:2: unexpected '3' in array; expected ',', a new line or ']'")
        XCTAssertEqual(parseError("\na: [1, 2,\n"), "brokerd.conf:2: unbalanced brackets: this '[' is never closed")
        XCTAssertEqual(parseError("a: [1,,2]"), "brokerd.conf:1: unexpected ',' in array; expected a value or ']'")
    }

    func testMissingValues() {
        XCTAssertEqual(parseError("debug: true\n\nport:\n4222"), #"brokerd.conf:3: expected value for key "port""#)
        XCTAssertEqual(parseError("port"), #"brokerd.conf:1: expected value for key "port""#)
        XCTAssertEqual(parseError("port =  \n"), #"brokerd.conf:1: expected value for key "port""#)
        XCTAssertEqual(parseError("a { port: }"), #"brokerd.conf:1: expected value for key "port""#)
        XCTAssertEqual(parseError("port: # to do\nhost: x"), #"brokerd.conf:1: expected value for key "port""#)
        XCTAssertEqual(try parse("password: #secret")["password"], .string("#secret"))
        XCTAssertEqual(parseError("prot\nport: 1"), #"brokerd.conf:1: expected value for key "prot""#)
        XCTAssertEqual(parseError(": 1"), "brokerd.conf:1: unexpected ':': missing key before the separator")
    }

    func testJunkAfterAValue() {
        XCTAssertEqual(parseError("port: 4222 4333"),
                       #"brokerd.conf:1: unexpected '4' after the value of "port"; expected a new line, ';' or ','"#)
        XCTAssertEqual(parseError("a: \"x\"y"),
                       #"brokerd.conf:1: unexpected 'y' after the value of "a"; expected a new line, ';' or ','"#)
    }

    func testDeepNestingIsRefused() {
        let text = "a: " + String(repeating: "[", count: ConfigParser.maxNestingDepth + 1)
        XCTAssertEqual(parseError(text), "brokerd.conf:1: blocks nested too deeply (limit \(ConfigParser.maxNestingDepth))")
    }
}
