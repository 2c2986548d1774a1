import XCTest
@testable import Broker

/// How a connection on a TLS port starts (`TLSNegotiation`), event by event, as nats-server's createClient.
final class TLSNegotiationTests: XCTestCase {
    let timeout: Duration = .seconds(2)

    func testModesFromTheConfig() {
        var tls = TLSConfig(certFile: "c", keyFile: "k")
        XCTAssertEqual(TLSNegotiation.Mode(tls, allowNonTLS: false), .infoThenHandshake)
        XCTAssertEqual(TLSNegotiation.Mode(tls, allowNonTLS: true), .infoThenSniff)
        tls.handshakeFirst = true
        XCTAssertEqual(TLSNegotiation.Mode(tls, allowNonTLS: true), .handshakeFirst(fallback: nil, allowNonTLS: true))
        XCTAssertFalse(TLSNegotiation.Mode(tls, allowNonTLS: true).infoFirst)
        tls.handshakeFirstFallback = .milliseconds(50)
        XCTAssertEqual(TLSNegotiation.Mode(tls, allowNonTLS: false), .handshakeFirst(fallback: .milliseconds(50), allowNonTLS: false))
    }

    func testInfoThenHandshake() {
        var n = TLSNegotiation(mode: .infoThenHandshake, timeout: timeout)
        XCTAssertEqual(n.channelActive(), [.startHandshake, .startTimer(timeout)])
        XCTAssertEqual(n.bytesArrived(firstByte: 0x16), [])  // the TLS handler has them
        XCTAssertTrue(n.isHandshaking)
        XCTAssertEqual(n.handshakeCompleted(), [.cancelTimer, .established(secure: true, sendInfo: false)])
        XCTAssertEqual(n.timerFired(), [])
    }

    func testHandshakeTimeoutCloses() {
        var n = TLSNegotiation(mode: .infoThenHandshake, timeout: timeout)
        _ = n.channelActive()
        XCTAssertEqual(n.timerFired(), [.closeTimedOut])
        XCTAssertEqual(n.handshakeCompleted(), [])  // too late
        XCTAssertEqual(n.state, .closed)
    }

    func testSniffingTLSAndPlain() {
        var tls = TLSNegotiation(mode: .infoThenSniff, timeout: timeout)
        XCTAssertEqual(tls.channelActive(), [.startTimer(timeout)])
        XCTAssertEqual(tls.bytesArrived(firstByte: 0x16), [.cancelTimer, .startHandshake, .startTimer(timeout)])
        XCTAssertEqual(tls.handshakeCompleted(), [.cancelTimer, .established(secure: true, sendInfo: false)])

        var plain = TLSNegotiation(mode: .infoThenSniff, timeout: timeout)
        _ = plain.channelActive()
        XCTAssertEqual(plain.bytesArrived(firstByte: UInt8(ascii: "C")), [.cancelTimer, .established(secure: false, sendInfo: false)])
        XCTAssertEqual(plain.bytesArrived(firstByte: 0x16), [])  // decided once

        var silent = TLSNegotiation(mode: .infoThenSniff, timeout: timeout)
        _ = silent.channelActive()
        XCTAssertEqual(silent.timerFired(), [.established(secure: false, sendInfo: false)])
    }

    func testHandshakeFirst() {
        var n = TLSNegotiation(mode: .handshakeFirst(fallback: nil, allowNonTLS: true), timeout: timeout)
        XCTAssertEqual(n.channelActive(), [.startHandshake, .startTimer(timeout)])
        XCTAssertEqual(n.handshakeCompleted(), [.cancelTimer, .established(secure: true, sendInfo: true)])
    }

    func testHandshakeFirstFallback() {
        let delay: Duration = .milliseconds(50)
        // Bytes within the delay: a handshake-first client.
        var first = TLSNegotiation(mode: .handshakeFirst(fallback: delay, allowNonTLS: false), timeout: timeout)
        XCTAssertEqual(first.channelActive(), [.startTimer(delay)])
        XCTAssertEqual(first.bytesArrived(firstByte: 0x16), [.cancelTimer, .startHandshake, .startTimer(timeout)])
        XCTAssertEqual(first.handshakeCompleted(), [.cancelTimer, .established(secure: true, sendInfo: true)])

        // Nothing within the delay: INFO in the clear, then the usual handshake...
        var later = TLSNegotiation(mode: .handshakeFirst(fallback: delay, allowNonTLS: false), timeout: timeout)
        _ = later.channelActive()
        XCTAssertEqual(later.timerFired(), [.sendInfo, .startHandshake, .startTimer(timeout)])
        XCTAssertEqual(later.handshakeCompleted(), [.cancelTimer, .established(secure: true, sendInfo: false)])

        // ...or, with allow_non_tls, sniffing.
        var mixed = TLSNegotiation(mode: .handshakeFirst(fallback: delay, allowNonTLS: true), timeout: timeout)
        _ = mixed.channelActive()
        XCTAssertEqual(mixed.timerFired(), [.sendInfo, .startTimer(timeout)])
        XCTAssertEqual(mixed.bytesArrived(firstByte: UInt8(ascii: "C")), [.cancelTimer, .established(secure: false, sendInfo: false)])
    }

    func testClosedBeforeTheEnd() {
        var n = TLSNegotiation(mode: .infoThenHandshake, timeout: timeout)
        _ = n.channelActive()
        XCTAssertEqual(n.closed(), [.cancelTimer])
        XCTAssertEqual(n.closed(), [])
        XCTAssertEqual(n.timerFired(), [])
    }

    func testHandshakeErrorsInGosWords() {
        XCTAssertEqual(TLSNegotiationHandler.reason(
            "Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at handshake.cc:320"),
            "CERTIFICATE_VERIFY_FAILED")
    }
}
