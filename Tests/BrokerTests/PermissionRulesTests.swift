import NIOCore
import XCTest
@testable import Broker
import Protocol

/// `PermissionRules`: nats-server's decisions (client.go canSubscribe, pubAllowed, checkDenySub).
final class PermissionRulesTests: XCTestCase {
    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testPublishAllowThenDeny() {
        let rules = PermissionRules(Permissions(publish: SubjectPermission(allow: ["FALCO.>", "$FALCO.INGEST"], deny: ["FALCO.Debug"])))
        XCTAssertTrue(rules.allowsPublish(ByteBuffer(string: "FALCO.Critical")))
        XCTAssertTrue(rules.allowsPublish(ByteBuffer(string: "$FALCO.INGEST")))
        XCTAssertFalse(rules.allowsPublish(ByteBuffer(string: "FALCO.Debug")), "deny wins over allow")
        XCTAssertFalse(rules.allowsPublish(ByteBuffer(string: "cmd.kill")))
        XCTAssertFalse(PermissionRules(Permissions(publish: SubjectPermission(allow: []))).allowsPublish(ByteBuffer(string: "x")),
                       "an empty publish allow list allows nothing")
        XCTAssertTrue(PermissionRules(Permissions(subscribe: SubjectPermission(allow: ["x"]))).allowsPublish(ByteBuffer(string: "y")))
    }

    func testSubscribeMatchesTheSubjectAsALiteralAsNatsServersSublistDoes() {
        let rules = PermissionRules(Permissions(subscribe: SubjectPermission(allow: ["FALCO.*"])))
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("FALCO.Critical"), queue: nil))
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("FALCO.*"), queue: nil))
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("FALCO.>"), queue: nil), "'*' takes the literal token '>'")
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes(">"), queue: nil))
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes("FALCO.a.b"), queue: nil))
        XCTAssertTrue(PermissionRules(Permissions(subscribe: SubjectPermission(allow: []))).allowsSubscribe(subject: bytes("x"), queue: nil),
                      "nats-server ignores an empty subscribe allow list")
    }

    func testQueueEntries() {
        let rules = PermissionRules(Permissions(subscribe: SubjectPermission(
            allow: ["FALCO.>", "FALCO.Critical responders", "jobs.* workers.*"], deny: ["FALCO.Debug spies"])))
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("FALCO.Critical"), queue: nil), "plain entries allow plain subscriptions")
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("FALCO.Critical"), queue: bytes("responders")))
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes("FALCO.Critical"), queue: bytes("others")),
                       "a matching queue entry decides queue subscriptions")
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("FALCO.Warning"), queue: bytes("others")))
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("jobs.a"), queue: bytes("workers.eu")), "wildcard queue names")
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes("jobs.a"), queue: bytes("idlers")))
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes("jobs.a"), queue: nil))
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes("FALCO.Debug"), queue: bytes("spies")))
        XCTAssertTrue(rules.allowsSubscribe(subject: bytes("FALCO.Debug"), queue: nil))
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes("FALCO.x"), queue: bytes("_sys_")))
    }

    func testDeliveryFilterForWildcardsThatOverlapADeny() throws {
        let rules = PermissionRules(Permissions(subscribe: SubjectPermission(allow: ["FALCO.>"], deny: ["FALCO.Debug", "FALCO.*.secret"])))
        XCTAssertFalse(rules.allowsSubscribe(subject: bytes("FALCO.Debug"), queue: nil))
        XCTAssertNil(rules.deliveryFilter(subject: bytes("FALCO.Critical"), queue: nil), "a literal allowed subject needs none")
        let filter = try XCTUnwrap(rules.deliveryFilter(subject: bytes("FALCO.*"), queue: nil))
        XCTAssertTrue(filter.denies(bytes("FALCO.Debug")))
        XCTAssertFalse(filter.denies(bytes("FALCO.Critical")))
        let deep = try XCTUnwrap(rules.deliveryFilter(subject: bytes("FALCO.>"), queue: nil))
        XCTAssertTrue(deep.denies(bytes("FALCO.x.secret")))
        XCTAssertNil(rules.deliveryFilter(subject: bytes("other.*"), queue: nil))
        // A token starting with a combining mark: Swift's String would not split before it; the trie's bytes do.
        XCTAssertTrue(Subject.overlaps("secret.*", "*.\u{301}x"))
        let secret = PermissionRules(Permissions(subscribe: SubjectPermission(deny: ["secret.*"])))
        XCTAssertTrue(try XCTUnwrap(secret.deliveryFilter(subject: bytes("*.\u{301}x"), queue: nil)).denies(bytes("secret.\u{301}x")))
    }

    func testTheTrieLeavesOutDeniedSubscriptionsPlainAndQueued() throws {
        let rules = PermissionRules(Permissions(subscribe: SubjectPermission(deny: ["FALCO.Debug"])))
        let sublist = Sublist<FilteredEntry>()
        let open = FilteredEntry("FALCO.*", queue: nil, filter: nil)
        let filtered = FilteredEntry("FALCO.*", queue: nil, filter: rules.deliveryFilter(subject: bytes("FALCO.*"), queue: nil))
        let member = FilteredEntry("FALCO.*", queue: "q", filter: rules.deliveryFilter(subject: bytes("FALCO.*"), queue: bytes("q")))
        for entry in [open, filtered, member] { try sublist.insert(entry) }
        let debug = sublist.match("FALCO.Debug")
        XCTAssertTrue(debug.plain.count == 1 && debug.plain[0] === open)
        XCTAssertTrue(debug.queues.isEmpty, "a queue group whose members are all filtered is dropped")
        let critical = sublist.match("FALCO.Critical")
        XCTAssertEqual(critical.plain.count, 2)
        XCTAssertEqual(critical.queues.map(\.count), [1])
    }
}

final class FilteredEntry: SublistEntry, @unchecked Sendable {
    let subjectBytes: [UInt8]
    let queueBytes: [UInt8]?
    let filter: DeliveryFilter?

    init(_ subject: String, queue: String?, filter: DeliveryFilter?) {
        subjectBytes = Array(subject.utf8)
        queueBytes = queue.map { Array($0.utf8) }
        self.filter = filter
    }

    func accepts(subject: [UInt8]) -> Bool { !(filter?.denies(subject) ?? false) }
}
