import XCTest

@testable import Broker

/// The file store's index by sequence: chunks made in any order, gaps passed over by their sorted keys.
final class SequenceIndexTests: XCTestCase {
    private func at(_ offset: Int) -> SequenceIndex.Location { .init(block: 1, offset: offset, length: 10) }

    func testGapsArePassedOverInAnyOrderOfInsertion() {
        let index = SequenceIndex()
        for s: UInt64 in [3_000_000, 10, 5000, 2048, 1] { index[s] = at(Int(s % 1000)) }
        XCTAssertEqual(index.count, 5)
        XCTAssertEqual(index.first, 1)
        XCTAssertEqual(index.first(atOrAfter: 2), 10)
        XCTAssertEqual(index.first(atOrAfter: 11), 2048)
        XCTAssertEqual(index.first(atOrAfter: 11, limit: 2000), nil)
        index[2048] = nil
        XCTAssertEqual(index.first(atOrAfter: 11), 5000)
        XCTAssertEqual(index.first(atOrAfter: 5001), 3_000_000)
        XCTAssertEqual(index[3_000_000], at(0))
        index[1] = nil
        index[10] = nil
        XCTAssertEqual(index.first, 5000)
        index[5000] = nil
        index[3_000_000] = nil
        XCTAssertNil(index.first)
        XCTAssertNil(index.first(atOrAfter: 0))
        XCTAssertEqual(index.count, 0)
        index[7] = at(7)  // the table is usable again
        XCTAssertEqual(index.first(atOrAfter: 0), 7)
    }
}
