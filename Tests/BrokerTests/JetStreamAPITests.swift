import XCTest

@testable import Broker

final class JetStreamAPITests: XCTestCase {
    private func api(_ subject: String) -> JetStreamAPI? { JetStreamAPI(subject: "$JS.API." + subject) }

    func testStreamRequests() {
        XCTAssertEqual(api("INFO"), .info)
        XCTAssertEqual(api("STREAM.CREATE.ORDERS"), .streamCreate("ORDERS"))
        XCTAssertEqual(api("STREAM.UPDATE.ORDERS"), .streamUpdate("ORDERS"))
        XCTAssertEqual(api("STREAM.INFO.ORDERS"), .streamInfo("ORDERS"))
        XCTAssertEqual(api("STREAM.DELETE.ORDERS"), .streamDelete("ORDERS"))
        XCTAssertEqual(api("STREAM.PURGE.ORDERS"), .streamPurge("ORDERS"))
        XCTAssertEqual(api("STREAM.MSG.GET.ORDERS"), .streamMsgGet("ORDERS"))
        XCTAssertEqual(api("STREAM.NAMES"), .streamNames)
        XCTAssertEqual(api("STREAM.LIST"), .streamList)
        // A dotted or empty name reaches the name check (10042) rather than being a bad request.
        XCTAssertEqual(api("STREAM.CREATE.A.B"), .streamCreate("A.B"))
        XCTAssertEqual(api("STREAM.CREATE."), .streamCreate(""))
    }

    func testConsumerRequests() {
        XCTAssertEqual(api("CONSUMER.CREATE.S"), .consumerCreate(stream: "S", name: nil, filter: nil))
        XCTAssertEqual(api("CONSUMER.CREATE.S.C"), .consumerCreate(stream: "S", name: "C", filter: nil))
        XCTAssertEqual(api("CONSUMER.CREATE.S.C.orders.*.new"), .consumerCreate(stream: "S", name: "C", filter: "orders.*.new"))
        XCTAssertEqual(api("CONSUMER.DURABLE.CREATE.S.D"), .consumerDurableCreate(stream: "S", durable: "D"))
        XCTAssertEqual(api("CONSUMER.INFO.S.C"), .consumerInfo(stream: "S", consumer: "C"))
        XCTAssertEqual(api("CONSUMER.DELETE.S.C"), .consumerDelete(stream: "S", consumer: "C"))
        XCTAssertEqual(api("CONSUMER.NAMES.S"), .consumerNames("S"))
        XCTAssertEqual(api("CONSUMER.LIST.S"), .consumerList("S"))
        XCTAssertEqual(api("CONSUMER.MSG.NEXT.S.C"), .consumerMsgNext(stream: "S", consumer: "C"))
        XCTAssertEqual(api("CONSUMER.PAUSE.S.C"), .consumerPause(stream: "S", consumer: "C"))
        XCTAssertEqual(api("STREAM.MSG.DELETE.S"), .streamMsgDelete("S"))
        // A missing consumer name is a consumer that is not found, as before.
        XCTAssertEqual(api("CONSUMER.INFO.S"), .consumerInfo(stream: "S", consumer: ""))
        XCTAssertEqual(api("CONSUMER.MSG.NEXT.S"), .consumerMsgNext(stream: "S", consumer: ""))
    }

    func testAnythingElseIsABadRequest() {
        for subject in ["", "NOPE", "INFO.X", "STREAM", "STREAM.CREATE", "STREAM.NAMES.X", "STREAM.MSG.GET", "STREAM.MSG.PUT.S",
                        "CONSUMER", "CONSUMER.CREATE", "CONSUMER.DURABLE.CREATE.S", "CONSUMER.NAMES",
                        "CONSUMER.PAUSE.S", "ACCOUNT.INFO"] {
            XCTAssertNil(api(subject), subject)
        }
        XCTAssertNil(JetStreamAPI(subject: "$JS.ACK.S.C.1.1.1.1.0"))
        XCTAssertNil(JetStreamAPI(subject: "INFO"))
    }
}
