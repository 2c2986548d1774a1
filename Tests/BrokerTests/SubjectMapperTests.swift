import NIOCore
import XCTest

@testable import Broker

/// nats-server's `mappings {}` rules on their own.
final class SubjectMapperTests: XCTestCase {
    private func map(_ mapper: SubjectMapper, _ subject: String) -> String? {
        mapper.map(ByteBuffer(string: subject)).map { String(buffer: $0) }
    }

    func testLiteralWildcardAndRestDestinations() throws {
        var mapper = SubjectMapper()
        try mapper.add(source: "falco.*.*", destinations: [("FALCO.{{wildcard(1)}}.rule.$2", 100)])
        try mapper.add(source: "old.>", destinations: [("new.>", 100)])
        try mapper.add(source: "exact", destinations: [("elsewhere", 100)])
        XCTAssertEqual(map(mapper, "falco.critical.shell"), "FALCO.critical.rule.shell")
        XCTAssertEqual(map(mapper, "old.a.b.c"), "new.a.b.c")
        XCTAssertEqual(map(mapper, "exact"), "elsewhere")
        XCTAssertNil(map(mapper, "falco.critical"), "too few tokens")
        XCTAssertNil(map(mapper, "old"), "'>' needs at least one token")
        XCTAssertNil(map(mapper, "unrelated.subject"))
    }

    func testWeightsSplitTrafficAndTheRestKeepsItsSubject() throws {
        var mapper = SubjectMapper()
        try mapper.add(source: "jobs", destinations: [("jobs.a", 50), ("jobs.b", 30)])
        var seen: [String: Int] = [:]
        for _ in 0..<2_000 { seen[map(mapper, "jobs") ?? "jobs", default: 0] += 1 }
        XCTAssertEqual(Set(seen.keys), ["jobs.a", "jobs.b", "jobs"])
        XCTAssertGreaterThan(seen["jobs.a"]!, seen["jobs.b"]!)
        XCTAssertGreaterThan(seen["jobs.b"]!, 0)
    }

    func testInvalidRulesAreRefusedWithTheirReason() {
        var mapper = SubjectMapper()
        XCTAssertThrowsError(try mapper.add(source: "a..b", destinations: [("x", 100)]))
        XCTAssertThrowsError(try mapper.add(source: "a.*", destinations: [("x.$2", 100)])) {
            XCTAssertEqual(($0 as? SubjectMapper.MappingError)?.description, #"mapping destination "x.$2": no wildcard 2 in "a.*""#)
        }
        XCTAssertThrowsError(try mapper.add(source: "a", destinations: [("x", 70), ("y", 40)])) {
            XCTAssertEqual(($0 as? SubjectMapper.MappingError)?.description, #"mapping weights for "a" add up to 110% (more than 100%)"#)
        }
        XCTAssertThrowsError(try mapper.add(source: "a.*", destinations: [("x.>", 100)]), "'>' needs a source ending in '>'")
        XCTAssertTrue(mapper.isEmpty)
    }
}
