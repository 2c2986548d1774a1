import Foundation
import XCTest
@testable import NATSConfig

/// Quoted, block and bare strings, booleans and escapes (`ConfigStrings`).
final class ConfigStringsTests: ConfigTestCase {
    func testQuotedAndBareStrings() throws {
        let map = try parse(#"""
            dq: "tab\there \"quoted\" back\\slash \x41\x42 nl\n"
            sq: 'raw \t $NOT_A_VAR "x"'
            bare: hello-world.example
            url: nats://host:4222/path
            hashInside: abc#def
            dollarInQuotes: "$HOME"
            empty: ""
            "quoted key": 1
            'single key' = 2
            block: (
            line one
              line two
            )
            """#)
        XCTAssertEqual(map["dq"], .string("tab\there \"quoted\" back\\slash AB nl\n"))
        XCTAssertEqual(map["sq"], .string(#"raw \t $NOT_A_VAR "x""#))
        XCTAssertEqual(map["bare"], .string("hello-world.example"))
        XCTAssertEqual(map["url"], .string("nats://host:4222/path"))
        XCTAssertEqual(map["hashInside"], .string("abc#def"))
        XCTAssertEqual(map["dollarInQuotes"], .string("$HOME"))
        XCTAssertEqual(map["empty"], .string(""))
        XCTAssertEqual(map["quoted key"], .integer(1))
        XCTAssertEqual(map["single key"], .integer(2))
        XCTAssertEqual(map["block"], .string("\nline one\n  line two\n"))
    }

    func testBooleansInEveryNatsSpelling() throws {
        let map = try parse("a: true\nb: FALSE\nc: yes\nd: No\ne: on\nf: off\ng: \"true\"")
        XCTAssertEqual(map["a"], .bool(true))
        XCTAssertEqual(map["b"], .bool(false))
        XCTAssertEqual(map["c"], .bool(true))
        XCTAssertEqual(map["d"], .bool(false))
        XCTAssertEqual(map["e"], .bool(true))
        XCTAssertEqual(map["f"], .bool(false))
        XCTAssertEqual(map["g"], .string("true"))  // quoted: a string, as in nats-server
    }

    func testUnterminatedStrings() {
        XCTAssertEqual(parseError("port: 1\nname: \"abc\nmore: 1\n"), "brokerd.conf:2: unterminated string: missing closing '\"'")
        XCTAssertEqual(parseError("name: 'abc"), "brokerd.conf:1: unterminated string: missing closing \"'\"")
        XCTAssertEqual(parseError("\"key: 1"), "brokerd.conf:1: unterminated quoted key: missing closing '\"'")
        XCTAssertEqual(parseError("b: (\nabc\n"), "brokerd.conf:1: unterminated block string: missing ')' on a line of its own")
        XCTAssertEqual(parseError(#"a: "bad \q escape""#),
                       #"brokerd.conf:1: invalid escape character 'q'; only \xXX, \t, \n, \r, \" and \\ are allowed"#)
    }
}
