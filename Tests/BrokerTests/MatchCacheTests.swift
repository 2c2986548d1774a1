import NIOCore
import XCTest

@testable import Broker

/// The per-loop cache in front of the trie (entries are the plain values of SublistTests).
final class MatchCacheTests: XCTestCase {
    var sublist = Sublist<Entry>()

    private func sub(_ subject: String, queue: String? = nil) -> Entry {
        Entry(Array(subject.utf8), queue: queue.map { Array($0.utf8) })
    }

    func testMatchCacheSeesInsertsAndRemoves() throws {
        var cache = MatchCache<Entry>()
        let subject = ByteBuffer(string: "FALCO.Critical")
        XCTAssertTrue(cache.match(subject, in: sublist).isEmpty)
        let s = sub("FALCO.*")
        try sublist.insert(s)
        XCTAssertEqual(cache.match(subject, in: sublist).plain.count, 1, "a stale cached miss must not hide a new sub")
        XCTAssertEqual(cache.match(subject, in: sublist).plain.count, 1)
        XCTAssertEqual(cache.hits, 1)
        sublist.remove(s)
        XCTAssertTrue(cache.match(subject, in: sublist).isEmpty)
    }

    func testMatchCacheIsBounded() {
        var cache = MatchCache<Entry>()
        for i in 0..<(MatchCache<Entry>.maxEntries * 2 + 10) {
            _ = cache.match(ByteBuffer(string: "subject.\(i)"), in: sublist)
        }
        XCTAssertLessThanOrEqual(cache.count, MatchCache<Entry>.maxEntries)
    }
}
