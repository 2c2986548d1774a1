import XCTest

@testable import Broker

/// StreamSourcing's decisions (positions, consumer requests, deliveries) and the header helpers, without a
/// queue, subject space or clock.
final class StreamSourcesTests: XCTestCase {
    private func sourcing(mirror: StreamSource? = nil, sources: [StreamSource]? = nil) -> StreamSourcing {
        var config = APIStreamConfig(name: "HERE")
        config.mirror = mirror
        config.sources = sources
        return StreamSourcing(stream: "HERE", config: config)!
    }

    private func ack(_ consumer: String, dc: Int = 1, sseq: UInt64, cseq: UInt64, pending: UInt64 = 0) -> String {
        "$JS.ACK.O.\(consumer).\(dc).\(sseq).\(cseq).1700000000000000000.\(pending)"
    }

    private func json(_ payload: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] ?? [:]
    }

    func testNoMirrorOrSourcesIsNoSourcing() {
        XCTAssertNil(StreamSourcing(stream: "S", config: APIStreamConfig(name: "S", subjects: ["s"])))
    }

    func testAckReplyBothForms() {
        let short = AckReply("$JS.ACK.O.C.1.5.3.1700.7")
        XCTAssertEqual(short?.stream, "O")
        XCTAssertEqual(short?.consumer, "C")
        XCTAssertEqual(short?.streamSequence, 5)
        XCTAssertEqual(short?.consumerSequence, 3)
        XCTAssertEqual(short?.pending, 7)
        let long = AckReply("$JS.ACK.hub.ACCHASH.O.C.2.9.4.1700.0.rand")
        XCTAssertEqual(long?.consumer, "C")
        XCTAssertEqual(long?.deliveries, 2)
        XCTAssertEqual(long?.streamSequence, 9)
        XCTAssertNil(AckReply("_INBOX.x"))
        XCTAssertNil(AckReply("$JS.ACK.O.C.x.5.3.1700.7"))
    }

    func testIndexNameAndHeaderAsNatsServer() {
        XCTAssertEqual(StreamSource(name: "O").indexName, "O > >")
        var filtered = StreamSource(name: "O")
        filtered.filterSubject = "o.1"
        XCTAssertEqual(filtered.indexName, "O o.1 >")
        var transformed = StreamSource(name: "O")
        transformed.subjectTransforms = [SubjectTransformConfig(src: "a.*", dest: "b.$1"), SubjectTransformConfig(src: "c", dest: "")]
        XCTAssertEqual(transformed.indexName, "O a.*\u{0C}c b.$1\u{0C}>")
        let value = SourceHeader.make(indexName: "O o.1 >", sequence: "12", original: Array("o.1".utf8))
        XCTAssertEqual(value, "O 12 o.1 > o.1")
        XCTAssertEqual(SourceHeader.parse(value)?.indexName, "O o.1 >")
        XCTAssertEqual(SourceHeader.parse(value + " IDENTITY")?.sequence, 12)
        XCTAssertNil(SourceHeader.parse("O 12"))
    }

    func testHeaderLineEdits() {
        let empty = HeaderLines.adding(name: "Nats-Stream-Source", value: "O 1 > > a", to: [])
        XCTAssertEqual(String(decoding: empty, as: UTF8.self), "NATS/1.0\r\nNats-Stream-Source: O 1 > > a\r\n\r\n")
        let some = Array("NATS/1.0\r\nK: v\r\nNats-Expected-Stream: X\r\nNats-Stream-Source: old\r\n\r\n".utf8)
        var edited = HeaderLines.removing(name: "Nats-Stream-Source", from: some)
        edited = HeaderLines.removing(prefix: "Nats-Expected-", from: edited)
        XCTAssertEqual(String(decoding: edited, as: UTF8.self), "NATS/1.0\r\nK: v\r\n\r\n")
        XCTAssertEqual(HeaderLines.value(of: "k", in: edited), "v")
        let only = Array("NATS/1.0\r\nNats-Stream-Source: old\r\n\r\n".utf8)
        XCTAssertEqual(HeaderLines.removing(name: "Nats-Stream-Source", from: only), [])
    }

    func testMirrorRequestStartsAfterItsLastSequence() {
        let s = sourcing(mirror: StreamSource(name: "O"))
        let origin = s.origins[0]
        var (subject, payload) = s.consumerRequest(for: origin, state: StoreState(), lastTime: 0, token: "T", now: 1)
        XCTAssertEqual(subject, "$JS.API.CONSUMER.CREATE.O.JS_MIRROR_T")
        var config = json(payload)["config"] as? [String: Any] ?? [:]
        XCTAssertEqual(config["deliver_policy"] as? String, "all")
        XCTAssertEqual(config["deliver_subject"] as? String, "$JS.M.T")
        XCTAssertEqual(config["ack_policy"] as? String, "none")
        XCTAssertEqual(origin.replySubject, "$JS.M.R.T")
        (subject, payload) = s.consumerRequest(for: origin, state: StoreState(messages: 3, bytes: 1, firstSequence: 5, lastSequence: 7),
                                               lastTime: 0, token: "U", now: 2)
        config = json(payload)["config"] as? [String: Any] ?? [:]
        XCTAssertEqual(config["deliver_policy"] as? String, "by_start_sequence")
        XCTAssertEqual(config["opt_start_seq"] as? Int, 8)
        XCTAssertEqual(origin.sourceSequence, 7)
    }

    func testFilteredSourceRequestAndExternalPrefix() {
        var source = StreamSource(name: "O")
        source.filterSubject = "o.>"
        let s = sourcing(sources: [source])
        let (subject, _) = s.consumerRequest(for: s.origins[0], state: StoreState(), lastTime: 0, token: "T", now: 1)
        XCTAssertEqual(subject, "$JS.API.CONSUMER.CREATE.O.JS_SRC_T.o.>")
        let external = try! JSONDecoder().decode(StreamSource.self, from: Data(#"{"name":"O","external":{"api":"$JS.hub.API"}}"#.utf8))
        let e = sourcing(sources: [external])
        XCTAssertEqual(e.consumerRequest(for: e.origins[0], state: StoreState(), lastTime: 0, token: "T", now: 1).subject,
                       "$JS.hub.API.CONSUMER.CREATE.O.JS_SRC_T")
    }

    func testMirrorDeliveriesKeepSequencesSkipOldAndRestartOnAHole() {
        let s = sourcing(mirror: StreamSource(name: "O"))
        let origin = s.origins[0]
        _ = s.consumerRequest(for: origin, state: StoreState(), lastTime: 0, token: "T", now: 1)
        let c = origin.consumer!
        // The first delivery of a consumer sets the position, even past a gap.
        XCTAssertEqual(s.inbound(origin, subject: [0x61], reply: ack(c, sseq: 3, cseq: 1), headers: [], payload: [], now: 5),
                       .mirror(sequence: 3, timestamp: 1_700_000_000_000_000_000, subject: [0x61], headers: [], payload: []))
        // An older one is ignored; one from another consumer too.
        XCTAssertEqual(s.inbound(origin, subject: [0x61], reply: ack(c, sseq: 3, cseq: 1), headers: [], payload: [], now: 5), .ignore)
        XCTAssertEqual(s.inbound(origin, subject: [0x61], reply: ack("OTHER", sseq: 4, cseq: 2), headers: [], payload: [], now: 5), .ignore)
        // A gap the origin made (no hole in delivery sequences) is fine; a hole in deliveries starts over.
        guard case .mirror(let seq, _, _, _, _) = s.inbound(origin, subject: [0x61], reply: ack(c, sseq: 9, cseq: 2), headers: [], payload: [], now: 5) else {
            return XCTFail("expected a store")
        }
        XCTAssertEqual(seq, 9)
        XCTAssertEqual(s.inbound(origin, subject: [0x61], reply: ack(c, sseq: 12, cseq: 5), headers: [], payload: [], now: 5), .restart)
        XCTAssertEqual(s.info(now: 5).mirror?.active, 0)
    }

    func testSourceDeliveryCarriesTheHeaderAndTransform() {
        var source = StreamSource(name: "O")
        source.subjectTransforms = [SubjectTransformConfig(src: "o.*", dest: "x.{{wildcard(1)}}")]
        let s = sourcing(sources: [source])
        let origin = s.origins[0]
        _ = s.consumerRequest(for: origin, state: StoreState(), lastTime: 0, token: "T", now: 1)
        let out = s.inbound(origin, subject: Array("o.7".utf8), reply: ack(origin.consumer!, sseq: 4, cseq: 1, pending: 3),
                            headers: Array("NATS/1.0\r\nNats-Stream-Source: Z 1 > > q\r\n\r\n".utf8), payload: [1], now: 2)
        XCTAssertEqual(out, .source(subject: Array("x.7".utf8),
                                    headers: Array("NATS/1.0\r\nNats-Stream-Source: O 4 o.* x.{{wildcard(1)}} o.7\r\n\r\n".utf8), payload: [1]))
        XCTAssertEqual(origin.lag, 2)
        // A subject the transforms do not take is passed over.
        XCTAssertEqual(s.inbound(origin, subject: Array("p".utf8), reply: ack(origin.consumer!, sseq: 5, cseq: 2), headers: [], payload: [], now: 2), .skip)
        XCTAssertEqual(origin.sourceSequence, 5)
    }

    func testSourcePositionIsRecoveredFromTheNewestHeader() throws {
        let store = MemoryStore()
        _ = try store.append(subject: [0x61], headers: Array("NATS/1.0\r\nNats-Stream-Source: O 4 > > a\r\n\r\n".utf8), payload: [], timestamp: 1)
        _ = try store.append(subject: [0x61], headers: Array("NATS/1.0\r\nNats-Stream-Source: P 2 > > a\r\n\r\n".utf8), payload: [], timestamp: 1)
        _ = try store.append(subject: [0x61], headers: Array("NATS/1.0\r\nNats-Stream-Source: O 9 > > a ID\r\n\r\n".utf8), payload: [], timestamp: 1)
        _ = try store.append(subject: [0x62], headers: [], payload: [], timestamp: 1)
        let s = sourcing(sources: [StreamSource(name: "O"), StreamSource(name: "P"), StreamSource(name: "Q")])
        s.recover(from: store)
        XCTAssertEqual(s.origins.map(\.sourceSequence), [9, 2, 0])
        let (_, payload) = s.consumerRequest(for: s.origins[0], state: store.state, lastTime: 1, token: "T", now: 1)
        XCTAssertEqual((json(payload)["config"] as? [String: Any])?["opt_start_seq"] as? Int, 10)
    }

    func testCreateReplyError() {
        let s = sourcing(mirror: StreamSource(name: "O"))
        let error = s.createReply(for: s.origins[0], payload: Array(#"{"error":{"code":404,"err_code":10059,"description":"stream not found"}}"#.utf8))
        XCTAssertEqual(error?.errCode, 10059)
        XCTAssertEqual(s.info(now: 0).mirror?.error?.description, "stream not found")
        XCTAssertNil(s.createReply(for: s.origins[0], payload: Array(#"{"name":"JS_MIRROR_T"}"#.utf8)))
    }

    func testStoreSkipKeepsMirrorSequences() throws {
        let store = MemoryStore()
        try store.skip(to: 5)
        XCTAssertEqual(try store.append(subject: [0x61], headers: [], payload: [], timestamp: 1), 5)
        XCTAssertEqual(store.state.firstSequence, 5)
        try store.skip(to: 3)
        XCTAssertEqual(try store.append(subject: [0x61], headers: [], payload: [], timestamp: 1), 6)
    }
}

/// The registry's checks of mirror and source configurations (nats-server's errors).
final class StreamRegistrySourcesTests: XCTestCase {
    func testRefusals() throws {
        let registry = StreamRegistry(storage: MemoryJetStreamStorage(), now: { 0 })
        _ = try registry.createStream("O", APIStreamConfig(name: "O", subjects: ["o.>"])).get()
        func code(_ change: (inout APIStreamConfig) -> Void) -> Int? {
            var c = APIStreamConfig(name: "X")
            change(&c)
            if case .failure(let e) = registry.createStream("X", c) { return e.errCode }
            return nil
        }
        XCTAssertEqual(code { $0.mirror = StreamSource(name: "O"); $0.subjects = ["m"] }, 10034)
        XCTAssertEqual(code { $0.mirror = StreamSource(name: "O"); $0.sources = [StreamSource(name: "O")] }, 10031)
        XCTAssertEqual(code { $0.mirror = StreamSource(name: "O"); $0.firstSeq = 5 }, 10143)
        XCTAssertEqual(code { $0.mirror = StreamSource(name: "a.b") }, 10142)
        XCTAssertEqual(code { $0.sources = [StreamSource(name: "O"), StreamSource(name: "O")] }, 10140)
        XCTAssertEqual(code { $0.subjects = ["x"]; $0.republish = RePublishConfig(src: ">", dest: "x") }, 10052)
        XCTAssertEqual(code { $0.subjects = ["x.>"]; $0.subjectTransform = SubjectTransformConfig(src: "x..y", dest: "z") }, 10155)
        // A mirror has no subjects and keeps its mirror; its sourcing is there at once.
        let info = try registry.createStream("M", { var c = APIStreamConfig(name: "M"); c.mirror = StreamSource(name: "O"); return c }()).get()
        XCTAssertEqual(info.config.subjects, [])
        XCTAssertEqual(info.mirror?.name, "O")
        XCTAssertEqual(info.mirror?.active, -1)
        var changed = APIStreamConfig(name: "M")
        changed.mirror = StreamSource(name: "O")
        changed.mirror?.filterSubject = "o.1"
        if case .failure(let e) = registry.createStream("M", changed, update: true) { XCTAssertEqual(e.errCode, 10055) } else { XCTFail() }
    }
}
