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

    /// `IncludePolicy.within`: includes stay inside one directory, whatever the path says (the fuzz target
    /// parses hostile text with it, so `include /dev/zero` never reads the real filesystem).
    func testIncludesConfinedToADirectory() throws {
        let inside = tempDirectory.appendingPathComponent("inside")
        try FileManager.default.createDirectory(at: inside, withIntermediateDirectories: true)
        try write("inside/a.conf", "port: 4222\n")
        try write("outside.conf", "port: 1\n")
        try FileManager.default.createSymbolicLink(atPath: inside.appendingPathComponent("link.conf").path,
                                                   withDestinationPath: tempDirectory.appendingPathComponent("outside.conf").path)
        func parse(_ text: String) throws -> ConfigMap {
            try ConfigParser.parse(bytes: Array(text.utf8), fileName: "fuzz.conf", baseDirectory: inside.path,
                                   environment: [:], includes: .within(inside.path))
        }
        XCTAssertEqual(try parse("include a.conf")["port"], .integer(4222))
        XCTAssertEqual(try parse("include ./a.conf")["port"], .integer(4222))
        for path in ["../outside.conf", "/dev/zero", "/etc/passwd", "link.conf", "'\(tempDirectory.path)/outside.conf'"] {
            XCTAssertThrowsError(try parse("include \(path)"), path) { error in
                XCTAssertTrue((error as? ConfigError)?.reason.hasSuffix("outside the directory includes may read from") == true,
                              "\(error)")
            }
        }
        // The default reads what the path names, as nats-server does.
        XCTAssertEqual(try ConfigParser.parse("include ../outside.conf", baseDirectory: inside.path, environment: [:])["port"],
                       .integer(1))
    }

    /// `parse(bytes:)` reads a file's bytes as they are, as `parse(contentsOf:)` does: invalid UTF-8 inside a
    /// string is kept as the replacement character, not a crash.
    func testParseBytesAsReadFromAFile() throws {
        let map = try ConfigParser.parse(bytes: Array("name: \"a".utf8) + [0xFF, 0xC0] + Array("b\"\n".utf8), environment: [:])
        XCTAssertEqual(map["name"], .string("a\u{FFFD}\u{FFFD}b"))
    }
}
