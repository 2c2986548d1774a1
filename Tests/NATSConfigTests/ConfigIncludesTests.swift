import Foundation
import XCTest
@testable import NATSConfig

/// `include` directives (`ConfigIncludes`).
final class ConfigIncludesTests: ConfigTestCase {
    func testIncludeRealFilesRelativeToTheIncludingFile() throws {
        try write("conf/auth.conf", """
            # included
            authorization {
              include "nested/token.conf"
            }
            INCLUDED_PORT: 4444
            """)
        try write("conf/nested/token.conf", "token: $TOKEN\n")
        let main = try write("conf/main.conf", """
            port: 1
            include auth.conf
            include 'empty.conf'
            port: $INCLUDED_PORT
            """)
        try write("conf/empty.conf", "// nothing here\n")

        let map = try ConfigParser.parse(contentsOf: main, environment: ["TOKEN": "from-env"])
        XCTAssertEqual(map["port"], .integer(4444))  // keys from an include are visible after it
        guard case .map(let auth) = map["authorization"] else { return XCTFail("not a map") }
        XCTAssertEqual(auth["token"], .string("from-env"))
        // Entries remember the file they came from.
        XCTAssertEqual(map.entry("authorization")?.file, tempDirectory.appendingPathComponent("conf/auth.conf").path)
        XCTAssertEqual(map.entry("authorization")?.line, 2)
    }

    func testIncludedFileDoesNotSeeTheIncludersKeys() throws {
        // nats-server parses an include on its own: only the environment fills its variables.
        try write("inc.conf", "port: $P\n")
        XCTAssertEqual(parseError("P: 1\ninclude inc.conf").replacingOccurrences(of: tempDirectory.path + "/", with: ""),
                       #"inc.conf:1: undefined variable "$P": not defined earlier in scope nor in the environment"#)
        XCTAssertEqual(try parse("include inc.conf", environment: ["P": "7"])["port"], .integer(7))
    }

    func testIncludeErrors() throws {
        XCTAssertEqual(parseError("port: 1\n\ninclude missing.conf"),
                       #"brokerd.conf:3: cannot read include file "missing.conf": no such file"#)
        XCTAssertEqual(parseError("include\nport: 1"), "brokerd.conf:1: expected a file name after include")
        // An error inside the included file names that file and its line.
        let bad = try write("bad.conf", "port: 1\nhost: \"unterminated\n")
        XCTAssertEqual(parseError("include bad.conf"), "\(bad):2: unterminated string: missing closing '\"'")
        // Cycles are reported instead of recursing forever.
        let a = try write("a.conf", "include b.conf\n")
        try write("b.conf", "include a.conf\n")
        XCTAssertThrowsError(try ConfigParser.parse(contentsOf: a, environment: [:])) { error in
            XCTAssertEqual((error as? ConfigError)?.description,
                           "\(tempDirectory.appendingPathComponent("b.conf").path):1: include cycle: \"a.conf\" is already being included")
        }
    }
}
