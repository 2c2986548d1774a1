import Foundation
import XCTest
@testable import NATSConfig

/// `$NAME` references to earlier keys and the environment (`ConfigVariables`).
final class ConfigVariablesTests: ConfigTestCase {
    func testVariablesFromEarlierKeysInScope() throws {
        let map = try parse("""
            PORT: 4333
            NAME: outer
            port: $PORT
            block {
              NAME: inner
              name: $NAME
              port: $PORT
            }
            name: $NAME
            list: [$PORT, $NAME]
            """)
        XCTAssertEqual(map["port"], .integer(4333))  // the value keeps its type
        XCTAssertEqual(map["name"], .string("outer"))
        XCTAssertEqual(map["list"], .array([.integer(4333), .string("outer")]))
        guard case .map(let block) = map["block"] else { return XCTFail("not a map") }
        XCTAssertEqual(block["name"], .string("inner"))  // innermost scope first
        XCTAssertEqual(block["port"], .integer(4333))
        XCTAssertEqual(map.entry("PORT")?.usedAsVariable, true)
        XCTAssertEqual(map.entry("port")?.usedAsVariable, false)
    }

    func testVariablesFromTheEnvironmentAreParsedAsValues() throws {
        let environment = ["PORT": "4333", "SIZE": "1MB", "FLAG": "on", "WORDS": "'two words'", "PORT_ALIAS": "$PORT", "EMPTY": ""]
        let map = try parse("""
            port: $PORT
            size: $SIZE
            flag: $FLAG
            words: $WORDS
            alias: $PORT_ALIAS
            empty: $EMPTY
            PORT: 1
            shadowed: $PORT
            """, environment: environment)
        XCTAssertEqual(map["port"], .integer(4333))
        XCTAssertEqual(map["size"], .integer(1024 * 1024))
        XCTAssertEqual(map["flag"], .bool(true))
        XCTAssertEqual(map["words"], .string("two words"))
        XCTAssertEqual(map["alias"], .integer(4333))
        XCTAssertEqual(map["empty"], .string(""))
        XCTAssertEqual(map["shadowed"], .integer(1))  // a key in the file beats the environment
    }

    func testVariableErrors() {
        XCTAssertEqual(parseError("port: 1\nhost: $NOPE"),
                       #"brokerd.conf:2: undefined variable "$NOPE": not defined earlier in scope nor in the environment"#)
        // Defined later is not defined.
        XCTAssertEqual(parseError("a: $B\nB: 1"),
                       #"brokerd.conf:1: undefined variable "$B": not defined earlier in scope nor in the environment"#)
        XCTAssertEqual(parseError("a: $A", environment: ["A": "$B", "B": "$A"]),
                       #"brokerd.conf:1: variable reference cycle for "$A""#)
        XCTAssertEqual(parseError("a: $A", environment: ["A": "two words"]),
                       #"brokerd.conf:1: cannot parse environment variable "A": unexpected 'w' after the value of "pk"; expected a new line, ';' or ','"#)
    }

    func testBcryptHashIsNotAVariable() throws {
        let map = try parse("password: $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG")
        XCTAssertEqual(map["password"], .string("$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG"))
    }
}
