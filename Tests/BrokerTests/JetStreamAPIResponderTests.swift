import XCTest

@testable import Broker

/// The JSON each API request gets, as a client reads it.
final class JetStreamAPIResponderTests: XCTestCase {
    private var clock: JetStreamTestClock!
    private var registry: StreamRegistry!
    private var responder: JetStreamAPIResponder!
    private var stats = AccountInfoResponse.APIStats()

    override func setUp() {
        clock = JetStreamTestClock()
        registry = StreamRegistry(storage: MemoryJetStreamStorage(), now: clock.now)
        responder = JetStreamAPIResponder(registry: registry)
    }

    @discardableResult
    private func request(_ subject: String, _ body: String = "") -> [String: Any] {
        let outcome = responder.respond(subject: "$JS.API." + subject, payload: Array(body.utf8), stats: stats)
        guard let text = outcome.text else {
            XCTFail("no reply to \(subject)")
            return [:]
        }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? ["unparsed": text]
    }

    private func text(_ subject: String, _ body: String = "") -> String {
        responder.respond(subject: "$JS.API." + subject, payload: Array(body.utf8), stats: stats).text ?? ""
    }

    private func errCode(_ reply: [String: Any]) -> Int? {
        (reply["error"] as? [String: Any])?["err_code"] as? Int
    }

    private func publish(_ stream: String, _ subject: String, _ payload: String, headers: String = "") throws {
        _ = try registry.streams[stream]!.stream.publish(subject: Array(subject.utf8), headers: Array(headers.utf8),
                                                         payload: Array(payload.utf8), messageID: nil)
    }

    func testErrorBodiesKeepTheirShape() {
        XCTAssertEqual(text("NOPE"), #"{"error":{"code":400,"description":"bad request","err_code":10003}}"#)
        XCTAssertEqual(text("STREAM.INFO.X"),
                       #"{"error":{"code":404,"description":"stream not found","err_code":10059},"type":"io.nats.jetstream.api.v1.stream_info_response"}"#)
    }

    func testAccountInfo() {
        stats = .init(total: 7, errors: 2)
        let info = request("INFO")
        XCTAssertEqual(info["type"] as? String, "io.nats.jetstream.api.v1.account_info_response")
        XCTAssertEqual(info["streams"] as? Int, 0)
        XCTAssertEqual((info["api"] as? [String: Any])?["total"] as? Int, 7)
        XCTAssertEqual((info["limits"] as? [String: Any])?["max_memory"] as? Int, -1)
        XCTAssertEqual((info["limits"] as? [String: Any])?["max_bytes_required"] as? Bool, false)
    }

    func testStreamCreateEchoesTheConfigWithDefaults() throws {
        let created = request("STREAM.CREATE.FALCO", #"{"name":"FALCO","subjects":["FALCO.>"],"max_age":5000000000,"placement":{"cluster":"c1"},"bogus":1}"#)
        XCTAssertEqual(created["type"] as? String, "io.nats.jetstream.api.v1.stream_create_response")
        XCTAssertEqual(created["did_create"] as? Bool, true)
        let config = try XCTUnwrap(created["config"] as? [String: Any])
        XCTAssertEqual(config["subjects"] as? [String], ["FALCO.>"])
        XCTAssertEqual(config["max_age"] as? Int, 5_000_000_000)
        // As nats-server: the default window (2 min) is cut to a shorter max_age.
        XCTAssertEqual(config["duplicate_window"] as? Int, 5_000_000_000)
        XCTAssertEqual(config["retention"] as? String, "limits")
        XCTAssertEqual(config["storage"] as? String, "file")
        XCTAssertEqual(config["max_msgs"] as? Int, -1)
        XCTAssertEqual(config["deny_purge"] as? Bool, false)
        XCTAssertEqual((config["placement"] as? [String: Any])?["cluster"] as? String, "c1")
        XCTAssertNil(config["bogus"], "as nats-server, fields StreamConfig does not have are dropped")
        XCTAssertNil(config["description"])
        XCTAssertEqual(created["created"] as? String, "2026-01-01T00:00:00.000000000Z")
        let state = try XCTUnwrap(created["state"] as? [String: Any])
        XCTAssertEqual(state["first_ts"] as? String, "0001-01-01T00:00:00Z")
        XCTAssertEqual(state["consumer_count"] as? Int, 0)

        let again = request("STREAM.CREATE.FALCO", #"{"name":"FALCO","subjects":["FALCO.>"],"max_age":5000000000,"placement":{"cluster":"c1"}}"#)
        XCTAssertEqual(again["did_create"] as? Bool, false)
        XCTAssertEqual(errCode(request("STREAM.CREATE.FALCO", #"{"subjects":["OTHER.>"]}"#)), 10058)
    }

    func testStreamCreateErrors() {
        XCTAssertEqual(errCode(request("STREAM.CREATE.A.B", "{}")), 10042)
        XCTAssertEqual(errCode(request("STREAM.CREATE.A", #"{"name":"B"}"#)), 10056)
        XCTAssertEqual(errCode(request("STREAM.CREATE.A", #"{"subjects":["a b"]}"#)), 10052)
        XCTAssertEqual(errCode(request("STREAM.CREATE.A", #"{"subjects":"a"}"#)), 10025)
        XCTAssertEqual(errCode(request("STREAM.CREATE.A", #"{"storage":"tape"}"#)), 10025)
        request("STREAM.CREATE.A", #"{"subjects":["a.>"]}"#)
        XCTAssertEqual(errCode(request("STREAM.CREATE.B", #"{"subjects":["a.b"]}"#)), 10065)
        registry.maxMemory = 10
        let refused = request("STREAM.CREATE.M", #"{"subjects":["m"],"storage":"memory","max_bytes":11}"#)
        XCTAssertEqual(errCode(refused), 10028)
        XCTAssertEqual((refused["error"] as? [String: Any])?["code"] as? Int, 500)
        XCTAssertEqual(refused["type"] as? String, "io.nats.jetstream.api.v1.stream_create_response")
        registry.maxStore = 10
        XCTAssertEqual(errCode(request("STREAM.CREATE.F", #"{"subjects":["f"],"max_bytes":11}"#)), 10047)
    }

    func testStreamUpdateInfoPurgeDelete() throws {
        request("STREAM.CREATE.A", #"{"subjects":["a.>"]}"#)
        for i in 0..<3 { try publish("A", "a.x", "\(i)") }
        let updated = request("STREAM.UPDATE.A", #"{"name":"A","subjects":["a.>"],"max_msgs":1}"#)
        XCTAssertEqual(updated["type"] as? String, "io.nats.jetstream.api.v1.stream_update_response")
        XCTAssertNil(updated["did_create"])
        XCTAssertEqual((updated["config"] as? [String: Any])?["max_msgs"] as? Int, 1)
        XCTAssertEqual(errCode(request("STREAM.UPDATE.NOPE", "{}")), 10059)

        let info = request("STREAM.INFO.A")
        XCTAssertEqual(info["type"] as? String, "io.nats.jetstream.api.v1.stream_info_response")
        let state = try XCTUnwrap(info["state"] as? [String: Any])
        XCTAssertEqual(state["messages"] as? Int, 1)
        XCTAssertEqual(state["first_seq"] as? Int, 3)
        XCTAssertEqual(state["last_ts"] as? String, "2026-01-01T00:00:00.000000000Z")

        XCTAssertEqual(text("STREAM.PURGE.A"), #"{"purged":1,"success":true,"type":"io.nats.jetstream.api.v1.stream_purge_response"}"#)
        XCTAssertEqual(errCode(request("STREAM.PURGE.NOPE")), 10059)
        XCTAssertEqual(text("STREAM.DELETE.A"), #"{"success":true,"type":"io.nats.jetstream.api.v1.stream_delete_response"}"#)
        XCTAssertEqual(errCode(request("STREAM.DELETE.A")), 10059)
    }

    func testMessageGet() throws {
        request("STREAM.CREATE.A", #"{"subjects":["a.>"]}"#)
        try publish("A", "a.x", "hello", headers: "NATS/1.0\r\nK: v\r\n\r\n")
        clock.nanoseconds += 1_500
        try publish("A", "a.y", "bye")
        let got = request("STREAM.MSG.GET.A", #"{"seq":1}"#)
        XCTAssertEqual(got["type"] as? String, "io.nats.jetstream.api.v1.stream_msg_get_response")
        let message = try XCTUnwrap(got["message"] as? [String: Any])
        XCTAssertEqual(message["subject"] as? String, "a.x")
        XCTAssertEqual(message["seq"] as? Int, 1)
        XCTAssertEqual(message["data"] as? String, "aGVsbG8=")
        XCTAssertEqual(message["hdrs"] as? String, Data("NATS/1.0\r\nK: v\r\n\r\n".utf8).base64EncodedString())
        XCTAssertEqual(message["time"] as? String, "2026-01-01T00:00:00.000000000Z")
        let last = try XCTUnwrap(request("STREAM.MSG.GET.A", #"{"last_by_subj":"a.y"}"#)["message"] as? [String: Any])
        XCTAssertEqual(last["time"] as? String, "2026-01-01T00:00:00.000001500Z")
        XCTAssertNil(last["hdrs"])
        XCTAssertEqual(errCode(request("STREAM.MSG.GET.A", #"{"seq":9}"#)), 10037)
        XCTAssertEqual(errCode(request("STREAM.MSG.GET.NOPE", #"{"seq":1}"#)), 10059)
    }

    func testStreamNamesAndList() throws {
        request("STREAM.CREATE.B", #"{"subjects":["b.>"]}"#)
        request("STREAM.CREATE.A", #"{"subjects":["a.>"]}"#)
        let names = request("STREAM.NAMES")
        XCTAssertEqual(names["type"] as? String, "io.nats.jetstream.api.v1.stream_names_response")
        XCTAssertEqual(names["streams"] as? [String], ["A", "B"])
        XCTAssertEqual(names["total"] as? Int, 2)
        XCTAssertEqual(names["limit"] as? Int, 1024)
        XCTAssertEqual(request("STREAM.NAMES", #"{"subject":"b.x"}"#)["streams"] as? [String], ["B"])
        let list = request("STREAM.LIST", "{}")
        XCTAssertEqual(list["type"] as? String, "io.nats.jetstream.api.v1.stream_list_response")
        let streams = try XCTUnwrap(list["streams"] as? [[String: Any]])
        XCTAssertEqual(streams.compactMap { ($0["config"] as? [String: Any])?["name"] as? String }, ["A", "B"])
        XCTAssertNil(streams[0]["type"])
        XCTAssertEqual(list["limit"] as? Int, 256)
    }

    func testConsumerCreateInfoNamesListDelete() throws {
        XCTAssertEqual(errCode(request("CONSUMER.DURABLE.CREATE.A.D", #"{"stream_name":"A","config":{"durable_name":"D"}}"#)), 10059)
        request("STREAM.CREATE.A", #"{"subjects":["a.>"]}"#)
        try publish("A", "a.x", "1")
        let body = #"{"stream_name":"A","config":{"durable_name":"D","ack_policy":"explicit","deliver_subject":"in.1","backoff":[1000]}}"#
        let created = request("CONSUMER.DURABLE.CREATE.A.D", body)
        XCTAssertEqual(created["type"] as? String, "io.nats.jetstream.api.v1.consumer_create_response")
        XCTAssertEqual(created["stream_name"] as? String, "A")
        XCTAssertEqual(created["name"] as? String, "D")
        let config = try XCTUnwrap(created["config"] as? [String: Any])
        XCTAssertEqual(config["name"] as? String, "D")
        XCTAssertEqual(config["ack_wait"] as? Int, 30_000_000_000)
        XCTAssertEqual(config["max_ack_pending"] as? Int, 1000)
        XCTAssertEqual(config["deliver_policy"] as? String, "all")
        XCTAssertEqual(config["replay_policy"] as? String, "instant")
        XCTAssertEqual(config["num_replicas"] as? Int, 0)
        XCTAssertEqual(config["backoff"] as? [Int], [1000])
        XCTAssertNil(config["filter_subject"])
        XCTAssertEqual(created["num_pending"] as? Int, 1)
        XCTAssertEqual((created["delivered"] as? [String: Any])?["stream_seq"] as? Int, 0)
        XCTAssertEqual(created["created"] as? String, "2026-01-01T00:00:00.000000000Z")
        XCTAssertNil(errCode(request("CONSUMER.DURABLE.CREATE.A.D", body)))
        XCTAssertEqual(errCode(request("CONSUMER.DURABLE.CREATE.A.D", #"{"config":{"durable_name":"D","ack_policy":"none"}}"#)), 10012)
        XCTAssertEqual(errCode(request("CONSUMER.DURABLE.CREATE.A.D", #"{"config":{"durable_name":"D","ack_policy":"none"},"action":"create"}"#)), 10148)
        XCTAssertEqual(errCode(request("CONSUMER.DURABLE.CREATE.A.D", #"{"config":{"durable_name":"E"}}"#)), 10017)
        XCTAssertEqual(errCode(request("CONSUMER.DURABLE.CREATE.A.D", #"{"config":{"ack_wait":"soon"}}"#)), 10025)

        let named = request("CONSUMER.CREATE.A.P.a.x", #"{"stream_name":"A","config":{"name":"P"}}"#)
        XCTAssertEqual((named["config"] as? [String: Any])?["filter_subject"] as? String, "a.x")

        let info = request("CONSUMER.INFO.A.D")
        XCTAssertEqual(info["type"] as? String, "io.nats.jetstream.api.v1.consumer_info_response")
        XCTAssertEqual(info["num_waiting"] as? Int, 0)
        XCTAssertEqual(errCode(request("CONSUMER.INFO.A.NOPE")), 10014)
        XCTAssertEqual(errCode(request("CONSUMER.INFO.NOPE.D")), 10014)

        XCTAssertEqual(text("CONSUMER.NAMES.A"),
                       #"{"consumers":["D","P"],"limit":1024,"offset":0,"total":2,"type":"io.nats.jetstream.api.v1.consumer_names_response"}"#)
        let list = request("CONSUMER.LIST.A")
        XCTAssertEqual((list["consumers"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["D", "P"])
        XCTAssertEqual(list["type"] as? String, "io.nats.jetstream.api.v1.consumer_list_response")
        XCTAssertEqual(text("CONSUMER.DELETE.A.D"), #"{"success":true,"type":"io.nats.jetstream.api.v1.consumer_delete_response"}"#)
        XCTAssertEqual(errCode(request("CONSUMER.DELETE.A.D")), 10014)
        XCTAssertEqual((request("STREAM.INFO.A")["state"] as? [String: Any])?["consumer_count"] as? Int, 1)
    }

    func testChangesTheServerActsOn() throws {
        func change(_ subject: String, _ body: String = "") -> JetStreamAPIResponder.Change? {
            if case .reply(_, _, let change) = responder.respond(subject: "$JS.API." + subject, payload: Array(body.utf8), stats: stats) {
                return change
            }
            return nil
        }
        XCTAssertEqual(change("STREAM.CREATE.A", #"{"subjects":["a"]}"#), .streamCreated("A"))
        XCTAssertEqual(change("STREAM.CREATE.A", #"{"subjects":["a"]}"#), JetStreamAPIResponder.Change.none)
        XCTAssertEqual(change("STREAM.UPDATE.A", #"{"subjects":["a"]}"#), JetStreamAPIResponder.Change.none)
        XCTAssertEqual(change("STREAM.UPDATE.A", #"{"subjects":["a","b"]}"#), .streamUpdated("A"))
        XCTAssertEqual(change("STREAM.UPDATE.A", #"{"subjects":["a"],"storage":"memory"}"#), JetStreamAPIResponder.Change.none)
        guard case .consumerReady(let consumer) = change("CONSUMER.CREATE.A.C", "{}") else { return XCTFail("no consumer") }
        XCTAssertEqual(consumer.name, "C")
        XCTAssertEqual(change("STREAM.DELETE.A"), .streamDeleted("A"))
        XCTAssertEqual(change("STREAM.DELETE.A"), JetStreamAPIResponder.Change.none)
    }

    func testPullRequestsAreHandedToTheConsumer() throws {
        request("STREAM.CREATE.A", #"{"subjects":["a"]}"#)
        request("CONSUMER.CREATE.A.C", "{}")
        let outcome = responder.respond(subject: "$JS.API.CONSUMER.MSG.NEXT.A.C", payload: Array(#"{"batch":5,"expires":1000,"no_wait":true}"#.utf8), stats: stats)
        guard case .pull(let consumer, let pull) = outcome else { return XCTFail("not a pull") }
        XCTAssertEqual(consumer?.name, "C")
        XCTAssertEqual(pull, PullNextRequest(batch: 5, expires: 1000, noWait: true))
        guard case .pull(nil, let plain) = responder.respond(subject: "$JS.API.CONSUMER.MSG.NEXT.A.NOPE", payload: Array("3".utf8), stats: stats) else {
            return XCTFail("not a pull")
        }
        XCTAssertEqual(plain.batch, 3)
    }
}
