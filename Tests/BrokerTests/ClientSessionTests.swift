import NIOCore
import Protocol
import XCTest

@testable import Broker

final class ClientSessionTests: XCTestCase {
    private func options(_ json: String) throws -> ConnectOptions {
        try ConnectOptions.decode(ByteBuffer(string: json))
    }

    func testWithoutAuthTheConnectionIsOpenAtOnce() throws {
        var machine = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertEqual(machine.state, .open)
        XCTAssertFalse(machine.authTimerExpired())
        XCTAssertEqual(machine.connectReceived(try options("{}"), verdict: .allowed(user: nil, rules: nil)), .accept(sendOK: true))
        XCTAssertEqual(machine.connectReceived(try options(#"{"verbose":false}"#), verdict: .allowed(user: nil, rules: nil)),
                       .accept(sendOK: false))
    }

    func testAuthRequiredWaitsForAGoodConnect() throws {
        var machine = ClientSession(authRequired: true, pingMax: 2)
        XCTAssertEqual(machine.state, .awaitingConnect)
        XCTAssertTrue(machine.authTimerExpired())
        XCTAssertEqual(machine.connectReceived(try options(#"{"verbose":false}"#), verdict: .allowed(user: nil, rules: nil)),
                       .accept(sendOK: false))
        XCTAssertEqual(machine.state, .open)
        XCTAssertFalse(machine.authTimerExpired(), "the timer must not fire after a good CONNECT")
    }

    func testBadCredentialsAreAnAuthorizationViolation() throws {
        var machine = ClientSession(authRequired: true, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options("{}"), verdict: .denied), .reject(.authorizationViolation))
        // Credentials are judged before anything else, as nats-server does.
        XCTAssertEqual(machine.connectReceived(try options(#"{"no_responders":true}"#), verdict: .denied),
                       .reject(.authorizationViolation))
    }

    func testEveryConnectIsChecked() throws {
        var machine = ClientSession(authRequired: true, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options("{}"), verdict: .allowed(user: nil, rules: nil)), .accept(sendOK: true))
        XCTAssertEqual(machine.connectReceived(try options("{}"), verdict: .denied),
                       .reject(.authorizationViolation), "a second CONNECT with bad credentials")
    }

    func testProtocolLevelMustBeZeroOrOne() throws {
        var machine = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options(#"{"protocol":5}"#), verdict: .allowed(user: nil, rules: nil)),
                       .reject(.invalidClientProtocol))
        XCTAssertEqual(machine.connectReceived(try options(#"{"protocol":1,"verbose":false}"#), verdict: .allowed(user: nil, rules: nil)),
                       .accept(sendOK: false))
    }

    func testNoRespondersNeedsHeaders() throws {
        var machine = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options(#"{"no_responders":true}"#), verdict: .allowed(user: nil, rules: nil)),
                       .reject(.noRespondersRequiresHeaders))
        XCTAssertEqual(machine.connectReceived(try options(#"{"no_responders":true,"headers":true,"verbose":false}"#),
                                               verdict: .allowed(user: nil, rules: nil)), .accept(sendOK: false))
    }

    func testUnansweredPingsMakeTheConnectionStale() {
        var machine = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(0), interval: .seconds(120)), .sendPing,
                       "until the RTT is measured, every tick PINGs")
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(120), interval: .seconds(120)), .sendPing)
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(240), interval: .seconds(120)), .closeStale)
    }

    func testPongResetsAndRecentTrafficDelaysPings() {
        var machine = ClientSession(authRequired: false, pingMax: 1)
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(0), interval: .seconds(2)), .sendPing)
        machine.pongReceived()
        XCTAssertEqual(machine.pingsOutstanding, 0)
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(1), interval: .seconds(2)), .none, "client is active")
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(3), interval: .seconds(2)), .sendPing)
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(5), interval: .seconds(2)), .closeStale)
    }

    func testCloseHappensOnce() {
        var machine = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertTrue(machine.close())
        XCTAssertFalse(machine.close())
        XCTAssertTrue(machine.isClosed)
        XCTAssertEqual(machine.pingTimerFired(idle: .seconds(999), interval: .seconds(1)), .none)
    }

    func testPublishInPedanticModeReportsAWildcardSubjectAndStillRoutes() throws {
        var session = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "a.*"), reply: nil, now: .now()),
                       .init(error: .invalidPublishSubject, sendOK: true), "until CONNECT says otherwise: verbose and pedantic")
        _ = session.connectReceived(try options(#"{"verbose":false,"pedantic":true}"#), verdict: .allowed(user: nil, rules: nil))
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "a.*"), reply: nil, now: .now()),
                       .init(error: .invalidPublishSubject, sendOK: false))
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "a.b"), reply: nil, now: .now()), .init(error: nil, sendOK: false))
    }

    func testSubscribeChecksTheSubjectAndKeepsTheFirstOfAReusedSid() throws {
        var session = ClientSession(authRequired: false, pingMax: 2)
        _ = session.connectReceived(try options(#"{"verbose":true}"#), verdict: .allowed(user: nil, rules: nil))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "a.>"), queue: nil, sidInUse: false), .subscribe(sendOK: true))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "a.>.b"), queue: nil, sidInUse: false), .reject(.invalidSubject))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "a"), queue: nil, sidInUse: true), .keepExisting(sendOK: true))
        XCTAssertTrue(session.unsubscribeReceived())
    }

    private func session(with permissions: Permissions) throws -> ClientSession {
        var session = ClientSession(authRequired: true, pingMax: 2)
        _ = session.connectReceived(try options(#"{"verbose":true,"pedantic":false}"#),
                                    verdict: .allowed(user: "u", rules: PermissionRules(permissions)))
        return session
    }

    func testPublishPermissionsDenyWithNatsServersError() throws {
        var session = try session(with: Permissions(publish: SubjectPermission(allow: ["FALCO.>"], deny: ["FALCO.Debug"])))
        for _ in 0..<2 {  // the second time from the cache
            XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "FALCO.Critical"), reply: nil, now: .now()),
                           .init(error: nil, violation: nil, sendOK: true))
            XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "FALCO.Debug"), reply: nil, now: .now()),
                           .init(error: nil, violation: .publishViolation(subject: Array("FALCO.Debug".utf8)), sendOK: false))
            XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "cmd.kill"), reply: nil, now: .now()).violation?.wireText,
                           #"Permissions Violation for Publish to "cmd.kill""#)
        }
    }

    func testThePublishCacheStaysBounded() throws {
        var session = try session(with: Permissions(publish: SubjectPermission(allow: ["a.*"])))
        for i in 0..<1000 {
            XCTAssertNil(session.publishReceived(subject: ByteBuffer(string: "a.\(i)"), reply: nil, now: .now()).violation)
            XCTAssertNotNil(session.publishReceived(subject: ByteBuffer(string: "b.\(i)"), reply: nil, now: .now()).violation)
        }
    }

    func testReservedSubjectsAndRepliesAreRefusedToEveryone() throws {
        var session = ClientSession(authRequired: false, pingMax: 2)
        _ = session.connectReceived(try options(#"{"verbose":false}"#), verdict: .allowed(user: nil, rules: nil))
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "x"), reply: ByteBuffer(string: "_R_.a"), now: .now()).violation,
                       .replyViolation(reply: Array("_R_.a".utf8)))
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "x"), reply: ByteBuffer(string: "$JS.ACK.a"), now: .now()).violation?.wireText,
                       #"Permissions Violation for Publish with Reply of "$JS.ACK.a""#)
        XCTAssertNotNil(session.publishReceived(subject: ByteBuffer(string: "_GR_.x"), reply: nil, now: .now()).violation)
        XCTAssertNotNil(session.publishReceived(subject: ByteBuffer(string: "$NRG.x"), reply: nil, now: .now()).violation)
        XCTAssertNil(session.publishReceived(subject: ByteBuffer(string: "_R_"), reply: ByteBuffer(string: "_R_."), now: .now()).violation,
                     "only a subject longer than the prefix is reserved")
    }

    func testSubscribePermissionsComeBeforeTheSidCheck() throws {
        let session = try session(with: Permissions(subscribe: SubjectPermission(allow: ["FALCO.*", "FALCO.Critical responders"])))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "cmd.x"), queue: nil, sidInUse: true),
                       .reject(.subscriptionViolation(subject: Array("cmd.x".utf8), queue: nil)))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "FALCO.Critical"), queue: ByteBuffer(string: "others"), sidInUse: false),
                       .reject(.subscriptionViolation(subject: Array("FALCO.Critical".utf8), queue: Array("others".utf8))))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "FALCO.Critical"), queue: ByteBuffer(string: "responders"), sidInUse: false),
                       .subscribe(sendOK: true))
    }

    func testAllowResponsesPermitsOneAnswerPerRequest() throws {
        var session = try session(with: Permissions(subscribe: SubjectPermission(allow: ["svc"]), response: ResponsePermission()))
        let permits = try XCTUnwrap(session.replyPermits)
        XCTAssertNotNil(session.publishReceived(subject: ByteBuffer(string: "inbox.1"), reply: nil, now: .now()).violation)
        permits.requestDelivered(replyTo: ByteBuffer(string: "inbox.1"))
        XCTAssertNil(session.publishReceived(subject: ByteBuffer(string: "inbox.1"), reply: nil, now: .now()).violation)
        XCTAssertNotNil(session.publishReceived(subject: ByteBuffer(string: "inbox.1"), reply: nil, now: .now()).violation)
        permits.requestDelivered(replyTo: ByteBuffer(string: "inbox.2"))
        XCTAssertNotNil(session.publishReceived(subject: ByteBuffer(string: "inbox.2"), reply: nil, now: .now() + .seconds(121)).violation,
                        "expired after two minutes")
    }
}
