import NIOCore
import NIOEmbedded
import Protocol
import XCTest

@testable import Broker

/// The router on its own: no socket, no server. Outbounds without a channel keep what the router encoded in
/// `out`, where the test reads it.
final class RouterTests: XCTestCase {
    let loop = EmbeddedEventLoop()
    var sublist = Sublist<Subscription>()
    lazy var router = Router(index: 0, eventLoop: loop, sublist: sublist, random: SplitMix64(seed: 7))

    private func outbound(_ id: UInt64) -> Outbound {
        Outbound(id: id, router: router, loopCount: 1, maxPending: 1 << 20)
    }

    @discardableResult
    private func subscribe(_ outbound: Outbound, _ subject: String, queue: String? = nil, sid: String = "1",
                           headers: Bool = true) throws -> Subscription {
        let sub = Subscription(client: outbound, subject: Array(subject.utf8), queue: queue.map { Array($0.utf8) },
                               sid: ByteBuffer(string: sid), acceptsHeaders: headers)
        try sublist.insert(sub)
        return sub
    }

    private func publish(_ subject: String, _ body: String, reply: String? = nil, headers: String? = nil) -> Publish {
        var payload = ByteBuffer(string: headers ?? "")
        payload.writeString(body)
        return Publish(subject: ByteBuffer(string: subject), reply: reply.map { ByteBuffer(string: $0) },
                       headerLength: headers.map { $0.utf8.count }, payload: payload)
    }

    private func text(_ outbound: Outbound) -> String { String(buffer: outbound.out) }

    func testPlainSubscribersGetMSGAndTheOriginSkipsItsOwnWithoutEcho() throws {
        let a = outbound(1), b = outbound(2)
        try subscribe(a, "FALCO.*", sid: "1")
        try subscribe(b, "FALCO.>", sid: "9")
        var last = Router.LastMatch()
        router.routeFromClient(publish("FALCO.Critical", "hi"), origin: a, echo: false, noResponders: false, last: &last)
        XCTAssertEqual(text(a), "")
        XCTAssertEqual(text(b), "MSG FALCO.Critical 9 2\r\nhi\r\n")
        router.routeFromClient(publish("FALCO.Critical", "again"), origin: a, echo: true, noResponders: false, last: &last)
        XCTAssertEqual(text(a), "MSG FALCO.Critical 1 5\r\nagain\r\n")
        XCTAssertEqual(router.outMsgs, 3)
    }

    func testHeadersAreStrippedForASubscriberWithoutThem() throws {
        let a = outbound(1), b = outbound(2)
        try subscribe(a, "x", sid: "1", headers: true)
        try subscribe(b, "x", sid: "2", headers: false)
        router.publishFromServer(publish("x", "body", headers: "NATS/1.0\r\nA: b\r\n\r\n"))
        XCTAssertEqual(text(a), "HMSG x 1 18 22\r\nNATS/1.0\r\nA: b\r\n\r\nbody\r\n")
        XCTAssertEqual(text(b), "MSG x 2 4\r\nbody\r\n")
    }

    func testOneMemberOfEachQueueGroup() throws {
        let members = (1...4).map { outbound($0) }
        for (i, m) in members.enumerated() { try subscribe(m, "jobs", queue: i < 2 ? "a" : "b") }
        for n in 0..<100 { router.publishFromServer(publish("jobs", "\(n)")) }
        let counts = members.map { text($0).components(separatedBy: "MSG ").count - 1 }
        XCTAssertEqual(counts[0] + counts[1], 100)
        XCTAssertEqual(counts[2] + counts[3], 100)
        XCTAssertTrue(counts.allSatisfy { $0 > 0 }, "\(counts): the pick is random, every member gets some")
    }

    func testAutoUnsubscribeLimitStopsDeliveries() throws {
        let a = outbound(1)
        let sub = try subscribe(a, "x")
        sub.maxDeliveries.store(2, ordering: .relaxed)
        for _ in 0..<5 { router.publishFromServer(publish("x", "m")) }
        XCTAssertEqual(text(a).components(separatedBy: "MSG ").count - 1, 2)
    }

    func testNoRespondersStatusGoesToTheRequester() throws {
        let a = outbound(1)
        try subscribe(a, "_INBOX.1", sid: "5")
        var last = Router.LastMatch()
        router.routeFromClient(publish("nobody.home", "?", reply: "_INBOX.1"), origin: a, echo: true, noResponders: true, last: &last)
        XCTAssertEqual(text(a), "HMSG _INBOX.1 5 16 16\r\nNATS/1.0 503\r\n\r\n\r\n")
    }

    final class Recorder: InternalSubscriber, @unchecked Sendable {
        var received: [String] = []
        var answers: Bool
        init(answers: Bool) { self.answers = answers }
        func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
            received.append(String(buffer: publish.subject))
            return answers
        }
    }

    final class ServerMessageRecorder: InternalSubscriber, @unchecked Sendable {
        var received: [String] = []
        var receivesServerMessages: Bool { true }
        func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
            received.append(String(buffer: publish.subject))
            return false
        }
    }

    func testInternalSubscribersGetTheMessageOnceAndCountAsResponders() throws {
        let space = SubjectSpace(sublist: sublist, routers: [router])
        let stream = Recorder(answers: true)
        try space.subscribe("FALCO.*", stream)
        try space.subscribe("FALCO.>", stream)  // the same feature twice: one delivery
        let a = outbound(1)
        try subscribe(a, "_INBOX.1")
        var last = Router.LastMatch()
        router.routeFromClient(publish("FALCO.Notice", "{}", reply: "_INBOX.1"), origin: a, echo: true, noResponders: true, last: &last)
        XCTAssertEqual(stream.received, ["FALCO.Notice"])
        XCTAssertEqual(text(a), "", "a stream answers: no 'no responders' status")
        XCTAssertTrue(router.publishFromServer(publish("FALCO.Error", "{}"), toServices: true, answer: .callback { _ in }))
        XCTAssertFalse(router.publishFromServer(publish("other", "{}"), toServices: true, answer: .callback { _ in }))
    }

    func testRepliesAndDeliveriesFromTheServerReachClientsOnly() throws {
        let space = SubjectSpace(sublist: sublist, routers: [router])
        let stream = Recorder(answers: true)
        try space.subscribe("deliver.>", stream)
        XCTAssertFalse(space.hasInterest("deliver.x"), "an internal subscription is no client interest")
        let a = outbound(1)
        try subscribe(a, "deliver.x", sid: "3")
        XCTAssertTrue(space.hasInterest("deliver.x"))
        router.reply(to: ByteBuffer(string: "deliver.x"), ByteBuffer(string: "ack"))
        XCTAssertEqual(stream.received, [], "a stream does not capture the server's replies or deliveries")
        XCTAssertEqual(text(a), "MSG deliver.x 3 3\r\nack\r\n")
        // A feature that asks for them (a mirror's deliver subject) gets them and counts as interest.
        let mirror = ServerMessageRecorder()
        try space.subscribe("mirror.x", mirror)
        XCTAssertTrue(space.hasInterest("mirror.x"))
        router.reply(to: ByteBuffer(string: "mirror.x"), ByteBuffer(string: "m"))
        XCTAssertEqual(mirror.received, ["mirror.x"])
    }

    func testOnlyAClientPublishMarksAStalledSubscriber() throws {
        let slow = outbound(1), publisher = outbound(2)
        try subscribe(slow, "x")
        slow.stallGate.store(true, ordering: .relaxed)
        router.publishFromServer(publish("x", "from the server"))
        XCTAssertNil(router.stallTarget, "the server's own publishes never pause a client")
        var last = Router.LastMatch()
        router.routeFromClient(publish("x", "from a client"), origin: publisher, echo: true, noResponders: false, last: &last)
        XCTAssertTrue(router.stallTarget === slow)
    }

    func testTheLastMatchFollowsSubscriptionChanges() throws {
        let a = outbound(1), b = outbound(2)
        try subscribe(a, "x")
        var last = Router.LastMatch()
        router.routeFromClient(publish("x", "1"), origin: b, echo: false, noResponders: false, last: &last)
        try subscribe(b, "x", sid: "2")
        router.routeFromClient(publish("x", "2"), origin: a, echo: false, noResponders: false, last: &last)
        XCTAssertEqual(text(b), "MSG x 2 1\r\n2\r\n", "a new subscription is seen by a publisher repeating its subject")
    }
}
