import Foundation
import XCTest
@testable import Broker
import NATSConfig

/// Top-level keys of a config file mapped onto `BrokerOptions` (`ConfigLoader`).
final class ConfigLoaderTests: ConfigLoaderTestCase {
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

    func testHTTPSMonitorPortAndItsStartUpChecks() throws {
        var options = try load("https_port: 8443").0
        XCTAssertEqual(options.httpsPort, 8443)
        XCTAssertNil(options.httpPort)
        // nats-server's StartMonitoring refusals, checked by brokerd before it starts.
        XCTAssertEqual(options.monitorProblem, "TLS cert and key required for HTTPS")
        options.tls = TLSConfig(certFile: "c.pem", keyFile: "k.pem")
        XCTAssertNil(options.monitorProblem)
        options.httpPort = 8222
        XCTAssertEqual(options.monitorProblem, "can't specify both HTTP (8222) and HTTPs (8443) ports")
        let listen = try load("https: \"127.0.0.2:9443\"").0
        XCTAssertEqual(listen.httpHost, "127.0.0.2")
        XCTAssertEqual(listen.httpsPort, 9443)
    }

    func testIgnoredKeysAreReportedOnce() throws {
        let (options, ignored) = try load("""
            jetstream: enabled
            ocsp { mode: always }
            max_subscriptions: 100
            system_account: SYS
            STORE_DIR: /tmp
            syslog: true
            lame_duck_duration: "30s"
            ocsp { }
            """)
        // The repeated ocsp counts once, where its last definition is (the last definition wins).
        XCTAssertEqual(ignored, ["max_subscriptions", "system_account", "syslog", "ocsp"])
        XCTAssertEqual(options.lameDuckDuration, .seconds(30))
        XCTAssertTrue(options.jetStream)
        XCTAssertEqual(options.storeDirectory, "/tmp")
    }

    func testIdentityKeysBrokerdCannotEnforceAreErrors() {
        // Ignoring these would leave the server open to clients the operator meant to keep out.
        XCTAssertEqual(loadError("port: 1\naccounts { A: { users: [ { user: a, password: b } ] } }"),
                       #"brokerd.conf:2: "accounts" is not supported by brokerd; use authorization { users [...] } (with permissions)"#)
        XCTAssertEqual(loadError("no_auth_user: a"),
                       #"brokerd.conf:1: no_auth_user: "a" present, but users/nkeys are not defined"#)
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
}
