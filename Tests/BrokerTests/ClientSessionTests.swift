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
        XCTAssertEqual(machine.connectReceived(try options("{}"), authRequired: false, authenticated: true), .accept(sendOK: true))
        XCTAssertEqual(machine.connectReceived(try options(#"{"verbose":false}"#), authRequired: false, authenticated: true),
                       .accept(sendOK: false))
    }

    func testAuthRequiredWaitsForAGoodConnect() throws {
        var machine = ClientSession(authRequired: true, pingMax: 2)
        XCTAssertEqual(machine.state, .awaitingConnect)
        XCTAssertTrue(machine.authTimerExpired())
        XCTAssertEqual(machine.connectReceived(try options(#"{"verbose":false}"#), authRequired: true, authenticated: true),
                       .accept(sendOK: false))
        XCTAssertEqual(machine.state, .open)
        XCTAssertFalse(machine.authTimerExpired(), "the timer must not fire after a good CONNECT")
    }

    func testBadCredentialsAreAnAuthorizationViolation() throws {
        var machine = ClientSession(authRequired: true, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options("{}"), authRequired: true, authenticated: false), .reject(.authorizationViolation))
        // Credentials are judged before anything else, as nats-server does.
        XCTAssertEqual(machine.connectReceived(try options(#"{"no_responders":true}"#), authRequired: true, authenticated: false),
                       .reject(.authorizationViolation))
    }

    func testEveryConnectIsChecked() throws {
        var machine = ClientSession(authRequired: true, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options("{}"), authRequired: true, authenticated: true), .accept(sendOK: true))
        XCTAssertEqual(machine.connectReceived(try options("{}"), authRequired: true, authenticated: false),
                       .reject(.authorizationViolation), "a second CONNECT with bad credentials")
    }

    func testProtocolLevelMustBeZeroOrOne() throws {
        var machine = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options(#"{"protocol":5}"#), authRequired: false, authenticated: true),
                       .reject(.invalidClientProtocol))
        XCTAssertEqual(machine.connectReceived(try options(#"{"protocol":1,"verbose":false}"#), authRequired: false, authenticated: true),
                       .accept(sendOK: false))
    }

    func testNoRespondersNeedsHeaders() throws {
        var machine = ClientSession(authRequired: false, pingMax: 2)
        XCTAssertEqual(machine.connectReceived(try options(#"{"no_responders":true}"#), authRequired: false, authenticated: true),
                       .reject(.noRespondersRequiresHeaders))
        XCTAssertEqual(machine.connectReceived(try options(#"{"no_responders":true,"headers":true,"verbose":false}"#),
                                               authRequired: false, authenticated: true), .accept(sendOK: false))
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
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "a.*")),
                       .init(error: .invalidPublishSubject, sendOK: true), "until CONNECT says otherwise: verbose and pedantic")
        _ = session.connectReceived(try options(#"{"verbose":false,"pedantic":true}"#), authRequired: false, authenticated: true)
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "a.*")), .init(error: .invalidPublishSubject, sendOK: false))
        XCTAssertEqual(session.publishReceived(subject: ByteBuffer(string: "a.b")), .init(error: nil, sendOK: false))
    }

    func testSubscribeChecksTheSubjectAndKeepsTheFirstOfAReusedSid() throws {
        var session = ClientSession(authRequired: false, pingMax: 2)
        _ = session.connectReceived(try options(#"{"verbose":true}"#), authRequired: false, authenticated: true)
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "a.>"), sidInUse: false), .subscribe(sendOK: true))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "a.>.b"), sidInUse: false), .reject(.invalidSubject))
        XCTAssertEqual(session.subscribeReceived(subject: ByteBuffer(string: "a"), sidInUse: true), .keepExisting(sendOK: true))
        XCTAssertTrue(session.unsubscribeReceived())
    }
}
