import Foundation
import XCTest
@testable import Broker
import NATSConfig

/// The `authorization` block (`AuthorizationBlock`).
final class AuthorizationBlockTests: ConfigLoaderTestCase {
    func testAuthorizationConflictsAndUnsupportedFeatures() {
        XCTAssertEqual(loadError("authorization {\n user: a\n password: b\n token: c\n}"),
                       "brokerd.conf:1: authorization cannot have both a user/password and a token")
        // Ignoring these would leave the server open, so they are refused.
        XCTAssertEqual(loadError("authorization {\n  users: [ { user: a, password: b } ]\n}"),
                       #"brokerd.conf:2: "users" in authorization is not supported by brokerd"#)
        XCTAssertEqual(loadError("authorization { permissions: { publish: \"x\" } }"),
                       #"brokerd.conf:1: "permissions" in authorization is not supported by brokerd"#)
    }
}
