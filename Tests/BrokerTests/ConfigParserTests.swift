import Foundation
import XCTest
@testable import Broker

/// Tests for the nats-server style config file: `ConfigParser` (syntax) and `ConfigLoader` (keys).
final class ConfigParserTests: XCTestCase {
    private var tempDirectory: URL!

    override func setUpWithError() throws {
        tempDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("brokerd-config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDirectory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tempDirectory)
    }

    // MARK: Helpers

    private func parse(_ text: String, environment: [String: String] = [:]) throws -> ConfigMap {
        try ConfigParser.parse(text, fileName: "brokerd.conf", baseDirectory: tempDirectory.path, environment: environment)
    }

    /// The error's description, or a failure if parsing succeeded.
    private func parseError(_ text: String, environment: [String: String] = [:], line: UInt = #line) -> String {
        do {
            let map = try parse(text, environment: environment)
            XCTFail("expected an error, parsed \(map)", line: line)
            return ""
        } catch let error as ConfigError {
            return error.description
        } catch {
            XCTFail("unexpected error type \(error)", line: line)
            return ""
        }
    }

    private func load(_ text: String, environment: [String: String] = [:]) throws -> (BrokerOptions, [String]) {
        var options = BrokerOptions()
        let ignored = try ConfigLoader.load(
            text: text, fileName: "brokerd.conf", baseDirectory: tempDirectory.path, into: &options, environment: environment)
        return (options, ignored)
    }

    private func loadError(_ text: String, environment: [String: String] = [:], line: UInt = #line) -> String {
        do {
            _ = try load(text, environment: environment)
            XCTFail("expected an error", line: line)
            return ""
        } catch let error as ConfigError {
            return error.description
        } catch {
            XCTFail("unexpected error type \(error)", line: line)
            return ""
        }
    }

    @discardableResult
    private func write(_ name: String, _ contents: String) throws -> String {
        let url = tempDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    // MARK: Syntax

    func testSeparatorsCommentsAndTerminators() throws {
        let map = try parse("""
            # a hash comment
            a: 1          # trailing comment
            b = 2         // trailing slash comment
            c 3
            // a slash comment
            d: 4; e: 5, f = 6
            """)
        XCTAssertEqual(map.keys, ["a", "b", "c", "d", "e", "f"])
        XCTAssertEqual(map["a"], .integer(1))
        XCTAssertEqual(map["c"], .integer(3))
        XCTAssertEqual(map["f"], .integer(6))
        XCTAssertEqual(map.entry("c")?.line, 4)
        XCTAssertEqual(map.entry("e")?.line, 6)
    }

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

    func testNumbersFloatsAddressesAndDigitLedStrings() throws {
        let map = try parse("""
            int: 4222
            neg: -17
            float: 1.5
            negFloat: -0.25
            ip: 127.0.0.1
            hostPort: 0.0.0.0:4222
            duration: 30s
            mixed: 4222abc
            date: 2024-01-02T03:04:05Z
            """)
        XCTAssertEqual(map["int"], .integer(4222))
        XCTAssertEqual(map["neg"], .integer(-17))
        XCTAssertEqual(map["float"], .float(1.5))
        XCTAssertEqual(map["negFloat"], .float(-0.25))
        XCTAssertEqual(map["ip"], .string("127.0.0.1"))
        XCTAssertEqual(map["hostPort"], .string("0.0.0.0:4222"))
        XCTAssertEqual(map["duration"], .string("30s"))
        XCTAssertEqual(map["mixed"], .string("4222abc"))
        XCTAssertEqual(map["date"], .string("2024-01-02T03:04:05Z"))
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

    /// conf/parse.go: a bare letter is decimal, the letter plus b, i or ib is binary.
    func testSizeSuffixesMatchNatsServer() throws {
        let map = try parse("""
            a: 1k
            b: 1kb
            c: 64KB
            d: 1MB
            e: 1MiB
            f: 2m
            g: 1G
            h: 1gb
            i: 2Ti
            j: -5k
            """)
        XCTAssertEqual(map["a"], .integer(1000))
        XCTAssertEqual(map["b"], .integer(1024))
        XCTAssertEqual(map["c"], .integer(64 * 1024))
        XCTAssertEqual(map["d"], .integer(1024 * 1024))
        XCTAssertEqual(map["e"], .integer(1024 * 1024))
        XCTAssertEqual(map["f"], .integer(2_000_000))
        XCTAssertEqual(map["g"], .integer(1_000_000_000))
        XCTAssertEqual(map["h"], .integer(1 << 30))
        XCTAssertEqual(map["i"], .integer(2 << 40))
        XCTAssertEqual(map["j"], .integer(-5000))
        XCTAssertEqual(ConfigParser.parseSize("64KB"), 65536)
        XCTAssertNil(ConfigParser.parseSize("64XB"))
    }

    func testInvalidNumbersAndSizes() {
        XCTAssertEqual(parseError("a: 1kbb"),
                       #"brokerd.conf:1: invalid size suffix "kbb" in "1kbb"; use k, kb, m, mb, g, gb, t, tb, p, pb, e or eb"#)
        XCTAssertEqual(parseError("\na: 99999999999999999999"), #"brokerd.conf:2: integer "99999999999999999999" is out of range"#)
        XCTAssertEqual(parseError("a: 9999999999EB"), #"brokerd.conf:1: size "9999999999EB" is out of range"#)
        XCTAssertEqual(parseError("a: 1.5s"), #"brokerd.conf:1: invalid value "1.5s"; quote it if it is meant as a string"#)
        XCTAssertEqual(parseError("a: -abc"), #"brokerd.conf:1: expected a digit after '-' in "-abc""#)
        XCTAssertEqual(parseError("a: .5"), "brokerd.conf:1: floats must start with a digit")
        XCTAssertEqual(parseError("a: 2024-1-1"),
                       #"brokerd.conf:1: invalid date "2024-1-1": dates must be in full ISO8601 Zulu form, e.g. 2006-01-02T15:04:05Z"#)
    }

    func testTopLevelBracesAndJSONStyle() throws {
        let map = try parse(#"{"port": 4222, "debug": true, "authorization": {"token": "t"}}"#)
        XCTAssertEqual(map["port"], .integer(4222))
        XCTAssertEqual(map["debug"], .bool(true))
        XCTAssertEqual(parseError("{ port: 1 }\nhost: x"), "brokerd.conf:2: unexpected 'h' after the closing '}' of the top-level block")
    }

    func testDuplicateKeysLastWinsAndCRLF() throws {
        let map = try parse("port: 1\r\nhost: a\r\nport: 2\r\n")
        XCTAssertEqual(map["port"], .integer(2))
        XCTAssertEqual(map.keys, ["host", "port"])
        XCTAssertEqual(map.entry("port")?.line, 3)
    }

    // MARK: Variables

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

    // MARK: Includes

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

    func testMissingConfigFile() {
        let path = tempDirectory.appendingPathComponent("nope.conf").path
        XCTAssertThrowsError(try ConfigParser.parse(contentsOf: path, environment: [:])) { error in
            XCTAssertEqual((error as? ConfigError)?.description, "\(path): cannot read config file: no such file")
        }
    }

    // MARK: Syntax errors

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

    func testUnterminatedStrings() {
        XCTAssertEqual(parseError("port: 1\nname: \"abc\nmore: 1\n"), "brokerd.conf:2: unterminated string: missing closing '\"'")
        XCTAssertEqual(parseError("name: 'abc"), "brokerd.conf:1: unterminated string: missing closing \"'\"")
        XCTAssertEqual(parseError("\"key: 1"), "brokerd.conf:1: unterminated quoted key: missing closing '\"'")
        XCTAssertEqual(parseError("b: (\nabc\n"), "brokerd.conf:1: unterminated block string: missing ')' on a line of its own")
        XCTAssertEqual(parseError(#"a: "bad \q escape""#),
                       #"brokerd.conf:1: invalid escape character 'q'; only \xXX, \t, \n, \r, \" and \\ are allowed"#)
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

    // MARK: Loader

    /// Written to be valid for nats-server too; see testNatsServerAcceptsTheSampleConfig.
    private let sampleConfig = """
        # brokerd sample, also valid for nats-server
        server_name: "brokerd-1"
        listen: 127.0.0.1:4333
        http: "127.0.0.1:8333"

        max_payload: 2MB
        max_pending = 128MB
        max_control_line 8KB
        max_connections: 1k
        ping_interval: "30s"
        write_deadline: "5s"
        include 'limits.conf'

        // logging
        debug: yes
        trace: off
        logtime: true
        log_file: "/tmp/brokerd.log"

        SECRET: "s3cr3t"
        authorization {
          user: alice
          password: $SECRET
          timeout: 1.5
        }

        lame_duck_duration: "45s"
        lame_duck_grace_period: "5s"

        jetstream {
          store_dir: "/tmp/js"
          max_mem: 1G
        }
        cluster { name: c1, listen: 127.0.0.1:6222 }
        server_tags: ["az:1", "region:eu"]
        pid_file: "/tmp/brokerd.pid"

        """

    func testLoadsTheSampleConfigFromDisk() throws {
        try write("limits.conf", "ping_max: 3\n")
        let path = try write("brokerd.conf", sampleConfig)
        var options = BrokerOptions()
        let ignored = try ConfigLoader.load(path: path, into: &options, environment: [:])

        var expected = BrokerOptions()
        expected.serverName = "brokerd-1"
        expected.host = "127.0.0.1"
        expected.port = 4333
        expected.httpHost = "127.0.0.1"
        expected.httpPort = 8333
        expected.maxPayload = 2 * 1024 * 1024
        expected.maxPending = 128 * 1024 * 1024
        expected.maxControlLine = 8 * 1024
        expected.maxConnections = 1000
        expected.pingInterval = .seconds(30)
        expected.pingMax = 3
        expected.writeDeadline = .seconds(5)
        expected.debug = true
        expected.trace = false
        expected.logFile = "/tmp/brokerd.log"
        expected.authorization = .init(user: "alice", password: "s3cr3t")
        expected.authTimeout = .milliseconds(1500)
        expected.lameDuckDuration = .seconds(45)
        expected.lameDuckGracePeriod = .seconds(5)
        expected.configFile = path
        expected.jetStream = true
        expected.storeDirectory = "/tmp/js"
        expected.jetStreamMaxMemory = 1_000_000_000
        XCTAssertEqual(options, expected)
        XCTAssertEqual(ignored, ["logtime", "cluster", "server_tags", "pid_file"])
    }

    /// Double-checks that the sample really is a nats-server config: `nats-server -t` validates a
    /// config file. Skipped when nats-server is not installed.
    func testNatsServerAcceptsTheSampleConfig() throws {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? ""
        guard let natsServer = searchPath.split(separator: ":")
            .map({ "\($0)/nats-server" })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw XCTSkip("nats-server is not installed") }
        try write("limits.conf", "ping_max: 3\n")
        let path = try write("brokerd.conf", sampleConfig)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: natsServer)
        process.arguments = ["-c", path, "-t"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("is valid"), text)
    }

    func testAliasesAndCaseInsensitiveKeys() throws {
        var (options, _) = try load("""
            NET: 10.0.0.1
            Port: 5000
            MONITOR_PORT: 9000
            max_conn: 10
            logfile: /var/log/brokerd.log
            Authorization { USERNAME: bob, PASS: pw }
            """)
        XCTAssertEqual(options.host, "10.0.0.1")
        XCTAssertEqual(options.port, 5000)
        XCTAssertEqual(options.httpPort, 9000)
        XCTAssertNil(options.httpHost)
        XCTAssertEqual(options.maxConnections, 10)
        XCTAssertEqual(options.logFile, "/var/log/brokerd.log")
        XCTAssertEqual(options.authorization, .init(user: "bob", password: "pw"))

        (options, _) = try load("host: localhost\nlisten: 4333\nmonitor: \"[::1]:8222\"\ntrace_verbose: true")
        XCTAssertEqual(options.host, "localhost")  // listen with only a port keeps the host
        XCTAssertEqual(options.port, 4333)
        XCTAssertEqual(options.httpHost, "::1")
        XCTAssertEqual(options.httpPort, 8222)
        XCTAssertTrue(options.trace)
    }

    func testDurationsAsStringsAndSeconds() throws {
        var (options, _) = try load("""
            ping_interval: "2m"
            write_deadline: "500ms"
            lame_duck_duration: "1h"
            lame_duck_grace_period: "1m30s"
            authorization { token: t, timeout: "3s" }
            """)
        XCTAssertEqual(options.pingInterval, .seconds(120))
        XCTAssertEqual(options.writeDeadline, .milliseconds(500))
        XCTAssertEqual(options.lameDuckDuration, .seconds(3600))
        XCTAssertEqual(options.lameDuckGracePeriod, .seconds(90))
        XCTAssertEqual(options.authTimeout, .seconds(3))
        XCTAssertEqual(options.authorization, .init(token: "t"))

        // nats-server's older form: a bare integer is a number of seconds.
        (options, _) = try load("ping_interval: 30\nwrite_deadline: 7\nauthorization { timeout: 4 }")
        XCTAssertEqual(options.pingInterval, .seconds(30))
        XCTAssertEqual(options.writeDeadline, .seconds(7))
        XCTAssertEqual(options.authTimeout, .seconds(4))
        XCTAssertNil(options.authorization)  // a timeout alone sets no credentials
    }

    func testGoDurationSyntax() {
        func nanos(_ text: String) -> Int64? { try? GoDuration.parse(text).get() }
        XCTAssertEqual(nanos("10s"), 10_000_000_000)
        XCTAssertEqual(nanos("1.5h"), 5_400_000_000_000)
        XCTAssertEqual(nanos("1h2m3s4ms5us6ns"), 3_723_004_005_006)
        XCTAssertEqual(nanos("2µs"), 2000)
        XCTAssertEqual(nanos(".5s"), 500_000_000)
        XCTAssertEqual(nanos("-3m"), -180_000_000_000)
        XCTAssertEqual(nanos("0"), 0)
        XCTAssertEqual(GoDuration.parse("10"), .failure(.init(reason: #"missing unit in duration "10""#)))
        XCTAssertEqual(GoDuration.parse("1x"), .failure(.init(reason: #"unknown unit "x" in duration "1x""#)))
        XCTAssertEqual(GoDuration.parse(""), .failure(.init(reason: #"invalid duration """#)))
        XCTAssertEqual(GoDuration.parse("s"), .failure(.init(reason: #"invalid duration "s""#)))
        XCTAssertEqual(GoDuration.parse("9999999999h"), .failure(.init(reason: #"invalid duration "9999999999h""#)))
    }

    func testSizesAsIntegersSuffixesOrStrings() throws {
        let (options, _) = try load("max_payload: 65536\nmax_pending: \"32MB\"\nmax_control_line: 1k")
        XCTAssertEqual(options.maxPayload, 65536)
        XCTAssertEqual(options.maxPending, 32 * 1024 * 1024)
        XCTAssertEqual(options.maxControlLine, 1000)
    }

    /// nats-server's setBaselineOptions treats 0 as "use the default" for these.
    func testZeroMeansDefault() throws {
        var start = BrokerOptions()
        start.port = 1
        start.maxPayload = 1
        start.pingMax = 9
        start.httpPort = 8222
        _ = try ConfigLoader.load(text: """
            port: 0
            max_payload: 0
            ping_max: 0
            ping_interval: "0s"
            http_port: 0
            max_connections: 0
            """, into: &start, environment: [:])
        let defaults = BrokerOptions()
        XCTAssertEqual(start.port, defaults.port)
        XCTAssertEqual(start.maxPayload, defaults.maxPayload)
        XCTAssertEqual(start.pingMax, defaults.pingMax)
        XCTAssertEqual(start.pingInterval, defaults.pingInterval)
        XCTAssertNil(start.httpPort)  // monitoring off
        XCTAssertEqual(start.maxConnections, 0)  // nats-server: accept no clients
    }

    func testUnknownKeyIsAnErrorNamingIt() {
        let text = String(repeating: "debug: false\n", count: 11) + "prot: 4222\n"
        XCTAssertEqual(loadError(text), #"brokerd.conf:12: unknown key "prot""#)
        XCTAssertEqual(loadError("authorization {\n  user: a\n  usr: b\n}"),
                       #"brokerd.conf:3: unknown key "usr" in authorization"#)
    }

    func testKeysUsedOnlyAsVariablesAreNotUnknown() throws {
        // As in nats-server, a key referenced as $KEY is a variable, not an unknown setting.
        let (options, ignored) = try load("""
            TOKEN: "abc"
            authorization { NAME: bob, user: $NAME, password: $TOKEN }
            """)
        XCTAssertEqual(options.authorization, .init(user: "bob", password: "abc"))
        XCTAssertEqual(ignored, [])
        XCTAssertEqual(loadError("authorization { SALT: x, token: t }"),
                       #"brokerd.conf:1: unknown key "SALT" in authorization"#)
        XCTAssertEqual(loadError("UNUSED: 1"), #"brokerd.conf:1: unknown key "UNUSED""#)
    }

    func testIgnoredKeysAreReportedOnce() throws {
        let (options, ignored) = try load("""
            jetstream: enabled
            tls { cert_file: "x.pem" }
            max_subscriptions: 100
            system_account: SYS
            STORE_DIR: /tmp
            syslog: true
            lame_duck_duration: "30s"
            tls { }
            """)
        // The repeated tls counts once, where its last definition is (the last definition wins).
        XCTAssertEqual(ignored, ["max_subscriptions", "system_account", "syslog", "tls"])
        XCTAssertEqual(options.lameDuckDuration, .seconds(30))
        XCTAssertTrue(options.jetStream)
        XCTAssertEqual(options.storeDirectory, "/tmp")
    }

    func testJetStreamBlock() throws {
        let (options, _) = try load("jetstream {\n  store_dir: \"/var/lib/brokerd\"\n  max_file_store: 10GB\n}\n")
        XCTAssertTrue(options.jetStream)
        XCTAssertEqual(options.storeDirectory, "/var/lib/brokerd")
        XCTAssertFalse(try load("jetstream: disabled").0.jetStream)
        XCTAssertEqual(loadError("jetstream { bogus: 1 }"), #"brokerd.conf:1: unknown key "bogus" in jetstream"#)
        XCTAssertEqual(options.jetStreamSync, .batch, "group commit is the default")
        XCTAssertEqual(try load("jetstream { sync: always }").0.jetStreamSync, .always)
        let interval = try load("jetstream { sync_interval: \"5s\" }").0
        XCTAssertEqual(interval.jetStreamSync, .interval)
        XCTAssertEqual(interval.jetStreamSyncInterval, .seconds(5))
        XCTAssertEqual(try load("jetstream { sync_interval: always }").0.jetStreamSync, .always)
        XCTAssertEqual(loadError("jetstream { sync: sometimes }"),
                       #"brokerd.conf:1: invalid value "sometimes" for "jetstream.sync": expected always, batch or interval"#)
    }

    func testIdentityKeysBrokerdCannotEnforceAreErrors() {
        // Ignoring these would leave the server open to clients the operator meant to keep out.
        XCTAssertEqual(loadError("port: 1\naccounts { A: { users: [ { user: a, password: b } ] } }"),
                       #"brokerd.conf:2: "accounts" is not supported by brokerd; use authorization { token | user, password }"#)
        XCTAssertEqual(loadError("no_auth_user: a"),
                       #"brokerd.conf:1: "no_auth_user" is not supported by brokerd; use authorization { token | user, password }"#)
    }

    func testValuesOfTheWrongType() {
        XCTAssertEqual(loadError("\n\nport: \"abc\""), #"brokerd.conf:3: expected an integer for "port", got string "abc""#)
        XCTAssertEqual(loadError("debug: \"yes\""),
                       #"brokerd.conf:1: expected a boolean (true/false, yes/no, on/off) for "debug", got string "yes""#)
        XCTAssertEqual(loadError("host: 5"), #"brokerd.conf:1: expected a string for "host", got integer 5"#)
        XCTAssertEqual(loadError("max_payload: abc"),
                       #"brokerd.conf:1: invalid size "abc" for "max_payload"; write e.g. 1048576, 1MB or 64KB"#)
        XCTAssertEqual(loadError("authorization: true"), #"brokerd.conf:1: expected a map for "authorization", got boolean true"#)
        XCTAssertEqual(loadError("authorization { token: 12345 }"),
                       #"brokerd.conf:1: expected a string for "authorization.token", got integer 12345"#)
        XCTAssertEqual(loadError("ping_interval: 1.5"),
                       #"brokerd.conf:1: expected a duration such as "2m" or a number of seconds for "ping_interval", got float 1.5"#)
        XCTAssertEqual(loadError("lame_duck_duration: 60"),
                       #"brokerd.conf:1: expected a duration string such as "2m" for "lame_duck_duration", got integer 60"#)
        XCTAssertEqual(loadError("write_deadline: \"1x\""),
                       #"brokerd.conf:1: error parsing write_deadline: unknown unit "x" in duration "1x""#)
        XCTAssertEqual(loadError("listen: \"nohost\""),
                       #"brokerd.conf:1: could not parse address "nohost" for "listen": expected host:port"#)
    }

    func testValuesOutOfRange() {
        XCTAssertEqual(loadError("port: -1"), #"brokerd.conf:1: invalid value -1 for "port": must be between 0 and 65535"#)
        XCTAssertEqual(loadError("port: 70000"), #"brokerd.conf:1: invalid value 70000 for "port": must be between 0 and 65535"#)
        XCTAssertEqual(loadError("listen: \"0.0.0.0:99999\""),
                       #"brokerd.conf:1: invalid value 99999 for "listen": a port must be between 0 and 65535"#)
        XCTAssertEqual(loadError("max_payload: 3GB"), "brokerd.conf:1: max_payload value is too big (limit 2147483647)")
        XCTAssertEqual(loadError("max_pending: -1"), #"brokerd.conf:1: invalid value -1 for "max_pending": must not be negative"#)
        XCTAssertEqual(loadError("ping_max: -2"), #"brokerd.conf:1: invalid value -2 for "ping_max": must be between 0 and 2147483647"#)
        XCTAssertEqual(loadError("write_deadline: \"-1s\""), #"brokerd.conf:1: invalid value "-1s" for "write_deadline": must not be negative"#)
        XCTAssertEqual(loadError("lame_duck_duration: \"10s\""),
                       #"brokerd.conf:1: invalid value "10s" for "lame_duck_duration": the minimum is 30 seconds"#)
        XCTAssertEqual(loadError("server_name: \"a b\""), "brokerd.conf:1: server_name cannot contain spaces")
    }

    func testAuthorizationConflictsAndUnsupportedFeatures() {
        XCTAssertEqual(loadError("authorization {\n user: a\n password: b\n token: c\n}"),
                       "brokerd.conf:1: authorization cannot have both a user/password and a token")
        // Ignoring these would leave the server open, so they are refused.
        XCTAssertEqual(loadError("authorization {\n  users: [ { user: a, password: b } ]\n}"),
                       #"brokerd.conf:2: "users" in authorization is not supported by brokerd"#)
        XCTAssertEqual(loadError("authorization { permissions: { publish: \"x\" } }"),
                       #"brokerd.conf:1: "permissions" in authorization is not supported by brokerd"#)
    }

    func testFailedLoadLeavesOptionsUntouched() {
        var options = BrokerOptions()
        options.port = 1234
        XCTAssertThrowsError(try ConfigLoader.load(text: "port: 5\nbogus: 1", into: &options, environment: [:]))
        XCTAssertEqual(options.port, 1234)
        XCTAssertEqual(options, {
            var o = BrokerOptions()
            o.port = 1234
            return o
        }())
    }

    func testLoaderErrorsPointIntoIncludedFiles() throws {
        let included = try write("sub/limits.conf", "ping_max: 1\nmax_payload: -5\n")
        let main = try write("main.conf", "port: 4222\ninclude sub/limits.conf\n")
        var options = BrokerOptions()
        XCTAssertThrowsError(try ConfigLoader.load(path: main, into: &options, environment: [:])) { error in
            XCTAssertEqual((error as? ConfigError)?.description,
                           #"\#(included):2: invalid value -5 for "max_payload": must not be negative"#)
        }
        XCTAssertNil(options.configFile)
    }

    func testErrorDescriptionFormat() {
        let error = ConfigError(file: "brokerd.conf", line: 12, reason: "unknown key \"prot\"")
        XCTAssertEqual(error.description, #"brokerd.conf:12: unknown key "prot""#)
        XCTAssertEqual(error.localizedDescription, #"brokerd.conf:12: unknown key "prot""#)
        XCTAssertEqual(ConfigError(file: "x.conf", line: 0, reason: "cannot read").description, "x.conf: cannot read")
    }
}
