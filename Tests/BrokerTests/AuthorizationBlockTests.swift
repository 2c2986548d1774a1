import Foundation
import XCTest
@testable import Broker
import NATSConfig

/// The `authorization` block (`AuthorizationBlock`).
final class AuthorizationBlockTests: ConfigLoaderTestCase {
    func testAuthorizationConflictsAndUnsupportedFeatures() {
        XCTAssertEqual(loadError("authorization {\n user: a\n password: b\n token: c\n}"),
                       "brokerd.conf:1: authorization cannot have both a user/password and a token")
        XCTAssertEqual(loadError("authorization { user: a, users: [ { user: b, password: c } ] }"),
                       "brokerd.conf:1: Can not have a single user/pass and a users array")
        XCTAssertEqual(loadError("authorization { token: a, users: [ { user: b, password: c } ] }"),
                       "brokerd.conf:1: Can not have a token and a users array")
        // Ignoring these would leave the server open, so they are refused.
        XCTAssertEqual(loadError("authorization { auth_callout: { issuer: x } }"),
                       #"brokerd.conf:1: "auth_callout" in authorization is not supported by brokerd"#)
    }

    func testUsersWithPermissionsInEveryFormNatsServerAccepts() throws {
        let (options, _) = try load("""
            no_auth_user: guest
            authorization {
              default_permissions: { pub: "_INBOX.>", sub: ["_INBOX.>"] }
              users: [
                { user: falco, password: p1, permissions: { publish: { allow: ["FALCO.>"], deny: "FALCO.Debug" }, subscribe: { deny: ">" } } }
                { username: responder, pass: p2, permission: { sub: { allow: ["FALCO.* responders", "cmd.>"] }, allow_responses: { max: 3, expires: "30s" } } }
                { user: guest }
                { nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4, permissions: { import: "a", export: "b" } }
              ]
            }
            """)
        let auth = try XCTUnwrap(options.authorization)
        XCTAssertEqual(options.noAuthUser, "guest")
        XCTAssertEqual(auth.users.map(\.name), ["falco", "responder", "guest"])
        XCTAssertEqual(auth.users[0].permissions, Permissions(
            publish: SubjectPermission(allow: ["FALCO.>"], deny: ["FALCO.Debug"]), subscribe: SubjectPermission(deny: [">"])))
        XCTAssertEqual(auth.users[1].permissions, Permissions(
            publish: SubjectPermission(allow: []), subscribe: SubjectPermission(allow: ["FALCO.* responders", "cmd.>"]),
            response: ResponsePermission(maxMessages: 3, expires: .seconds(30))))
        XCTAssertEqual(auth.users[2].permissions, Permissions(
            publish: SubjectPermission(allow: ["_INBOX.>"]), subscribe: SubjectPermission(allow: ["_INBOX.>"])),
            "default_permissions for a user without its own")
        XCTAssertNil(auth.users[2].password)
        XCTAssertEqual(auth.nkeys.map(\.publicKey), ["UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"])
        XCTAssertEqual(auth.nkeys[0].permissions, Permissions(publish: SubjectPermission(allow: ["a"]), subscribe: SubjectPermission(allow: ["b"])))
    }

    func testBadUsersAndPermissionsGetNatsServersErrors() {
        XCTAssertEqual(loadError("authorization { users: { user: a } }"),
                       "brokerd.conf:1: Expected users field to be an array, got {...}")
        XCTAssertEqual(loadError("authorization { users: [ { password: a } ] }"),
                       "brokerd.conf:1: User entry requires a user")
        XCTAssertEqual(loadError("authorization { users: [ { nkey: UABC } ] }"),
                       "brokerd.conf:1: Not a valid public nkey for a user")
        XCTAssertEqual(loadError("authorization { users: [ { nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4, user: x } ] }"),
                       "brokerd.conf:1: Nkey users do not take usernames or passwords")
        XCTAssertEqual(loadError("authorization { users: [ { user: a }, { user: a } ] }"),
                       #"brokerd.conf:1: Duplicate user "a" detected"#)
        XCTAssertEqual(loadError("authorization { users: [ { user: a, permissions: { publish: \"a..b\" } } ] }"),
                       #"brokerd.conf:1: subject "a..b" is not a valid subject"#)
        XCTAssertEqual(loadError("authorization { users: [ { user: a, permissions: { publish: \"a q\" } } ] }"),
                       #"brokerd.conf:1: subject "a q" is not a valid subject"#)
        XCTAssertEqual(loadError("authorization { users: [ { user: a, permissions: { subscribe: \"a q..x\" } } ] }"),
                       #"brokerd.conf:1: queue "q..x" is not a valid queue"#)
        XCTAssertEqual(loadError("authorization { users: [ { user: a, permissions: { pub: { permit: x } } } ] }"),
                       #"brokerd.conf:1: Unknown field name "permit" parsing subject permissions, only 'allow' or 'deny' are permitted"#)
        XCTAssertEqual(loadError("authorization { users: [ { user: a, permissions: { talk: x } } ] }"),
                       #"brokerd.conf:1: Unknown field "talk" parsing permissions"#)
        XCTAssertEqual(loadError("authorization { users: [ { user: a, permissions: { allow_responses: 5 } } ] }"),
                       "brokerd.conf:1: error parsing response permissions, expected a boolean or a map")
        XCTAssertEqual(loadError("authorization { users: [ { user: a, allowed_connection_types: [\"TELNET\"] } ] }"),
                       #"brokerd.conf:1: unknown connection type "TELNET""#)
    }

    func testNoAuthUserMustBeAUser() {
        XCTAssertEqual(loadError("no_auth_user: ghost\nauthorization { users: [ { user: a } ] }"),
                       #"brokerd.conf:1: no_auth_user: "ghost" not present as user or nkey in authorization block or account configuration"#)
    }
}
