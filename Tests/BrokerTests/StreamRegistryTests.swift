import XCTest

@testable import Broker

final class StreamRegistryTests: XCTestCase {
    private var storage: MemoryJetStreamStorage!
    private var clock: JetStreamTestClock!
    private var registry: StreamRegistry!

    override func setUp() {
        storage = MemoryJetStreamStorage()
        clock = JetStreamTestClock()
        registry = StreamRegistry(storage: storage, now: clock.now)
        var counter = 0
        registry.makeConsumerName = {
            counter += 1
            return "EPHEMERAL\(counter)"
        }
    }

    private func config(_ name: String = "", _ subjects: [String] = [], _ change: (inout APIStreamConfig) -> Void = { _ in }) -> APIStreamConfig {
        var c = APIStreamConfig(name: name, subjects: subjects)
        change(&c)
        return c
    }

    private func publish(_ stream: String, _ subject: String, _ payload: String = "x") throws {
        _ = try registry.streams[stream]!.stream.publish(subject: Array(subject.utf8), headers: [], payload: Array(payload.utf8), messageID: nil)
    }

    private func error<T>(_ result: Result<T, JetStreamAPIError>) -> Int? {
        if case .failure(let e) = result { return e.errCode }
        return nil
    }

    // MARK: - Streams

    func testCreateFillsNameAndSubjectsAndSavesTheRecord() throws {
        let info = try registry.createStream("ORDERS", config()).get()
        XCTAssertEqual(info.didCreate, true)
        XCTAssertEqual(info.config.name, "ORDERS")
        XCTAssertEqual(info.config.subjects, ["ORDERS"])
        XCTAssertEqual(info.config.duplicateWindow, 120_000_000_000)
        XCTAssertEqual(info.created, APITime(nanoseconds: clock.nanoseconds))
        XCTAssertEqual(storage.streams["ORDERS"]?.config, info.config)
        XCTAssertEqual(info.state.messages, 0)
        XCTAssertEqual(info.state.firstTime, .zero)
    }

    func testIdenticalCreateIsNoErrorAndADifferentOneIsInUse() throws {
        _ = try registry.createStream("A", config("A", ["a.>"])).get()
        XCTAssertEqual(try registry.createStream("A", config("A", ["a.>"])).get().didCreate, false)
        // Defaults spelled out are the same configuration.
        XCTAssertEqual(try registry.createStream("A", config("A", ["a.>"]) { $0.maxMsgs = -1 }).get().didCreate, false)
        XCTAssertEqual(error(registry.createStream("A", config("A", ["b.>"]))), 10058)
    }

    func testNameChecks() {
        XCTAssertEqual(error(registry.createStream("A.B", config())), 10042)
        XCTAssertEqual(error(registry.createStream("", config())), 10042)
        XCTAssertEqual(error(registry.createStream("A*", config())), 10042)
        XCTAssertEqual(error(registry.createStream("A", config("B"))), 10056)
        XCTAssertEqual(error(registry.createStream("A", config("A", ["a..b"]))), 10052)
        XCTAssertEqual(error(registry.createStream("A", config("A", ["a.>.b"]))), 10052)
        XCTAssertTrue(registry.streams.isEmpty)
    }

    func testOverlappingSubjectsAreRefused() throws {
        _ = try registry.createStream("A", config("A", ["a.*"])).get()
        XCTAssertEqual(error(registry.createStream("B", config("B", ["a.x"]))), 10065)
        XCTAssertEqual(error(registry.createStream("C", config("C", [">"]))), 10065)
        XCTAssertNoThrow(try registry.createStream("D", config("D", ["a.x.y"])).get())
    }

    func testServerLimitsReserveMaxBytes() throws {
        registry.maxStore = 1000
        registry.maxMemory = 100
        _ = try registry.createStream("A", config("A", ["a"]) { $0.maxBytes = 800 }).get()
        XCTAssertEqual(error(registry.createStream("B", config("B", ["b"]) { $0.maxBytes = 300 })), 10047)
        XCTAssertNoThrow(try registry.createStream("C", config("C", ["c"]) { $0.maxBytes = 200 }).get())
        // No max_bytes reserves one byte: the store is now full.
        XCTAssertEqual(error(registry.createStream("D", config("D", ["d"]))), 10047)
        XCTAssertEqual(error(registry.createStream("M", config("M", ["m"]) { $0.storage = .memory; $0.maxBytes = 101 })), 10028)
        // Updating a stream does not count its own reservation twice.
        XCTAssertNoThrow(try registry.createStream("A", config("A", ["a"]) { $0.maxBytes = 790 }, update: true).get())
    }

    func testUpdateAppliesLimitsAndRefusesAStorageChange() throws {
        _ = try registry.createStream("A", config("A", ["a"])).get()
        for i in 0..<5 { try publish("A", "a", "\(i)") }
        let updated = try registry.createStream("A", config("A", ["a"]) { $0.maxMsgs = 2 }, update: true).get()
        XCTAssertNil(updated.didCreate)
        XCTAssertEqual(updated.state.messages, 2)
        XCTAssertEqual(updated.state.firstSeq, 4)
        XCTAssertEqual(storage.streams["A"]?.config.maxMsgs, 2)
        XCTAssertEqual(error(registry.createStream("A", config("A", ["a"]) { $0.storage = .memory }, update: true)), 10052)
        XCTAssertEqual(error(registry.createStream("B", config("B", ["b"]), update: true)), 10059)
        XCTAssertEqual(try registry.createStream("A", updated.config, update: true).get().didCreate, false)
    }

    func testInfoDeletePurgeAndNotFound() throws {
        _ = try registry.createStream("A", config("A", ["a.>"])).get()
        try publish("A", "a.1")
        clock.nanoseconds += 1_000_000_000
        try publish("A", "a.2")
        let info = try registry.streamInfo("A").get()
        XCTAssertEqual(info.state.messages, 2)
        XCTAssertEqual(info.state.firstTime, APITime(nanoseconds: clock.nanoseconds - 1_000_000_000))
        XCTAssertEqual(info.state.lastTime, APITime(nanoseconds: clock.nanoseconds))
        XCTAssertEqual(try registry.purgeStream("A").get().purged, 2)
        XCTAssertEqual(try registry.streamInfo("A").get().state.firstSeq, 3)
        XCTAssertEqual(error(registry.streamInfo("B")), 10059)
        XCTAssertEqual(error(registry.purgeStream("B")), 10059)
        XCTAssertNoThrow(try registry.deleteStream("A").get())
        XCTAssertNil(storage.streams["A"])
        XCTAssertEqual(error(registry.deleteStream("A")), 10059)
    }

    func testMessageGetBySequenceAndLastBySubject() throws {
        _ = try registry.createStream("A", config("A", ["a.>"])).get()
        try publish("A", "a.x", "one")
        try publish("A", "a.y", "two")
        try publish("A", "a.x", "three")
        let bySeq = try registry.message(in: "A", StreamMsgGetRequest(seq: 2)).get().message
        XCTAssertEqual(bySeq.subject, "a.y")
        XCTAssertEqual(bySeq.data, Data("two".utf8).base64EncodedString())
        XCTAssertNil(bySeq.hdrs)
        XCTAssertEqual(try registry.message(in: "A", StreamMsgGetRequest(lastBySubject: "a.x")).get().message.seq, 3)
        XCTAssertEqual(error(registry.message(in: "A", StreamMsgGetRequest(seq: 9))), 10037)
        XCTAssertEqual(error(registry.message(in: "A", StreamMsgGetRequest(lastBySubject: "b"))), 10037)
        XCTAssertEqual(error(registry.message(in: "A", StreamMsgGetRequest())), 10037)
        XCTAssertEqual(error(registry.message(in: "B", StreamMsgGetRequest(seq: 1))), 10059)
    }

    func testNamesFilterBySubjectAndListIsSorted() throws {
        _ = try registry.createStream("B", config("B", ["b.>"])).get()
        _ = try registry.createStream("A", config("A", ["a.*"])).get()
        XCTAssertEqual(registry.streamNames(StreamNamesRequest()).streams, ["A", "B"])
        XCTAssertEqual(registry.streamNames(StreamNamesRequest(subject: "a.x")).streams, ["A"])
        XCTAssertEqual(registry.streamNames(StreamNamesRequest(subject: "c")).total, 0)
        XCTAssertEqual(registry.streamList().streams.map(\.config.name), ["A", "B"])
        XCTAssertEqual(registry.accountInfo(api: .init(total: 3, errors: 1)).streams, 2)
    }

    func testRestoreReopensStreamsAndDurableConsumers() throws {
        _ = try registry.createStream("A", config("A", ["a"])).get()
        for _ in 0..<3 { try publish("A", "a") }
        var durable = APIConsumerConfig()
        durable.durableName = "D"
        let consumer = try registry.createConsumer(stream: "A", nameInSubject: "D", durableForm: true, ConsumerCreateRequest(config: durable)).get()
        _ = consumer.machine.next(now: clock.nanoseconds, lastSequence: 3) { _ in true }
        consumer.machine.ack(1)
        try registry.saveState(of: consumer)
        _ = try registry.createConsumer(stream: "A", nameInSubject: nil, durableForm: false, ConsumerCreateRequest()).get()

        let again = StreamRegistry(storage: storage, now: clock.now)
        XCTAssertEqual(try again.restore(), ["A"])
        XCTAssertEqual(again.streams["A"]?.stream.state.messages, 3)
        XCTAssertEqual(again.consumers["A"]?.keys.sorted(), ["D"], "ephemeral consumers are not restored")
        XCTAssertEqual(again.consumers["A"]?["D"]?.machine.ackFloorStream, 1)
    }

    // MARK: - Consumers

    func testConsumerCreateNamesAndIdempotence() throws {
        XCTAssertEqual(error(registry.createConsumer(stream: "A", nameInSubject: nil, durableForm: false, ConsumerCreateRequest())), 10059)
        _ = try registry.createStream("A", config("A", ["a.>"])).get()
        let ephemeral = try registry.createConsumer(stream: "A", nameInSubject: nil, durableForm: false, ConsumerCreateRequest()).get()
        XCTAssertEqual(ephemeral.name, "EPHEMERAL1")
        XCTAssertFalse(ephemeral.durable)
        XCTAssertNil(storage.consumers["A"]?["EPHEMERAL1"])

        var c = APIConsumerConfig()
        c.durableName = "D"
        c.deliverSubject = "inbox.1"
        let durable = try registry.createConsumer(stream: "A", nameInSubject: "D", durableForm: true, ConsumerCreateRequest(config: c)).get()
        XCTAssertTrue(durable.durable)
        XCTAssertEqual(durable.config.name, "D")
        XCTAssertEqual(storage.consumers["A"]?["D"]?.config, durable.config)
        // Binding again with another deliver subject is the same consumer, now delivering there.
        c.deliverSubject = "inbox.2"
        XCTAssertTrue(try registry.createConsumer(stream: "A", nameInSubject: "D", durableForm: true, ConsumerCreateRequest(config: c)).get() === durable)
        XCTAssertEqual(durable.deliverSubject, "inbox.2")
        // Another ack wait: "create" refuses, create-or-update (no action, or "") and "update" change it.
        c.ackWait = 1
        XCTAssertEqual(error(registry.createConsumer(stream: "A", nameInSubject: "D", durableForm: true,
                                                     ConsumerCreateRequest(config: c, action: "create"))), 10148)
        XCTAssertTrue(try registry.createConsumer(stream: "A", nameInSubject: "D", durableForm: true,
                                                  ConsumerCreateRequest(config: c, action: "")).get() === durable)
        XCTAssertEqual(durable.machine.configuration.ackWait, 1)
        c.ackPolicy = .none
        XCTAssertEqual(error(registry.createConsumer(stream: "A", nameInSubject: "D", durableForm: true, ConsumerCreateRequest(config: c))), 10012)
        c.ackPolicy = .explicit
        c.durableName = "E"
        XCTAssertEqual(error(registry.createConsumer(stream: "A", nameInSubject: "D", durableForm: true, ConsumerCreateRequest(config: c))), 10017)
    }

    func testConsumerFilterFromTheSubjectAndWorkqueueNeedsExplicitAck() throws {
        _ = try registry.createStream("A", config("A", ["a.>"]) { $0.retention = .workqueue }).get()
        let filtered = try registry.createConsumer(stream: "A", nameInSubject: "C", filterInSubject: "a.x.>", durableForm: false, ConsumerCreateRequest()).get()
        XCTAssertEqual(filtered.config.filterSubject, "a.x.>")
        XCTAssertEqual(filtered.filters, [Array("a.x.>".utf8)])
        var c = APIConsumerConfig()
        c.ackPolicy = .none
        XCTAssertEqual(error(registry.createConsumer(stream: "A", nameInSubject: "N", durableForm: false, ConsumerCreateRequest(config: c))), 10098)
    }

    func testDeliverPolicyChoosesTheStart() throws {
        _ = try registry.createStream("A", config("A", ["a.>"])).get()
        try publish("A", "a.x")
        clock.nanoseconds += 10
        try publish("A", "a.y")
        try publish("A", "a.x")
        func start(_ change: (inout APIConsumerConfig) -> Void) throws -> UInt64 {
            var c = APIConsumerConfig()
            change(&c)
            let consumer = try registry.createConsumer(stream: "A", nameInSubject: nil, durableForm: false, ConsumerCreateRequest(config: c)).get()
            return consumer.machine.deliveredStream + 1
        }
        XCTAssertEqual(try start { _ in }, 1)
        XCTAssertEqual(try start { $0.deliverPolicy = .last }, 3)
        XCTAssertEqual(try start { $0.deliverPolicy = .new }, 4)
        XCTAssertEqual(try start { $0.deliverPolicy = .byStartSequence; $0.optStartSeq = 2 }, 2)
        XCTAssertEqual(try start { $0.deliverPolicy = .byStartTime; $0.optStartTime = JetStream.timestamp(nanoseconds: clock.nanoseconds) }, 2)
        XCTAssertEqual(try start { $0.deliverPolicy = .lastPerSubject }, 2)
    }

    func testConsumerInfoDeleteNamesAndList() throws {
        _ = try registry.createStream("A", config("A", ["a"])).get()
        for _ in 0..<4 { try publish("A", "a") }
        let consumer = try registry.createConsumer(stream: "A", nameInSubject: "C", durableForm: false, ConsumerCreateRequest()).get()
        _ = consumer.machine.next(now: clock.nanoseconds, lastSequence: 4) { _ in true }
        let info = registry.info(of: consumer)
        XCTAssertEqual(info.delivered, SequencePair(consumerSeq: 1, streamSeq: 1))
        XCTAssertEqual(info.numAckPending, 1)
        XCTAssertEqual(info.numPending, 3)
        XCTAssertEqual(info.streamName, "A")
        _ = try registry.createConsumer(stream: "A", nameInSubject: "B", durableForm: false, ConsumerCreateRequest()).get()
        XCTAssertEqual(registry.consumerNames(stream: "A").consumers, ["B", "C"])
        XCTAssertEqual(registry.consumerList(stream: "A").consumers.map(\.name), ["B", "C"])
        XCTAssertEqual(try registry.streamInfo("A").get().state.consumerCount, 2)
        XCTAssertNoThrow(try registry.deleteConsumer(stream: "A", name: "C").get())
        XCTAssertEqual(error(registry.deleteConsumer(stream: "A", name: "C")), 10014)
        XCTAssertEqual(error(registry.consumer(stream: "A", name: "C")), 10014)
        XCTAssertEqual(registry.consumerNames(stream: "NOPE").total, 0)
        // Deleting the stream takes its consumers.
        _ = try registry.deleteStream("A").get()
        XCTAssertNil(registry.consumers["A"])
    }
}
