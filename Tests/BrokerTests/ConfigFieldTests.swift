import Foundation
import XCTest
@testable import Broker
import NATSConfig

/// Typed access to one entry: types, ranges, sizes and durations (`ConfigField`).
final class ConfigFieldTests: ConfigLoaderTestCase {
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

    func testSizesAsIntegersSuffixesOrStrings() throws {
        let (options, _) = try load("max_payload: 65536\nmax_pending: \"32MB\"\nmax_control_line: 1k")
        XCTAssertEqual(options.maxPayload, 65536)
        XCTAssertEqual(options.maxPending, 32 * 1024 * 1024)
        XCTAssertEqual(options.maxControlLine, 1000)
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
}
