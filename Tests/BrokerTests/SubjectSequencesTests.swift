import XCTest

@testable import Broker

/// A subject's sequences against a plain sorted array, through random appends, removals of the oldest, removals
/// anywhere and restores, across the compactions of the dead front.
final class SubjectSequencesTests: XCTestCase {
    func testMatchesASortedArrayThroughRandomChanges() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<4 {
            var list = SubjectSequences(), reference: [UInt64] = []
            var next: UInt64 = 1
            for step in 0..<2_000 {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<4:
                    let n = Int.random(in: 1...5, using: &rng)
                    let added = (0..<n).map { UInt64($0) + next }
                    next += UInt64(n) + UInt64.random(in: 0...2, using: &rng)
                    if n == 1 { list.append(added[0]) } else { list.append(contentsOf: added) }
                    reference += added
                case 4..<8:
                    guard !reference.isEmpty else { continue }
                    list.removeFirst()
                    reference.removeFirst()
                case 8:
                    guard let victim = reference.randomElement(using: &rng) else { continue }
                    XCTAssertTrue(list.remove(victim))
                    reference.removeAll { $0 == victim }
                    XCTAssertFalse(list.remove(victim), "a sequence not held is not removed")
                default:
                    // A restore: a sequence below the newest that is not held goes back in its place.
                    guard let last = reference.last, last > 1 else { continue }
                    let s = UInt64.random(in: 1..<last, using: &rng)
                    list.insert(s)
                    if !reference.contains(s) { reference.insert(s, at: reference.firstIndex(atLeast: s)) }
                }
                if step % 10 == 0 || reference.count < 50 {
                    XCTAssertEqual(Array(list), reference)
                    XCTAssertEqual(Array(list.elements), reference)
                }
                XCTAssertEqual(list.count, reference.count)
                XCTAssertEqual(list.first, reference.first)
                XCTAssertEqual(list.last, reference.last)
                let probe = UInt64.random(in: 0...(next + 1), using: &rng)
                XCTAssertEqual(list.firstIndex(atLeast: probe), reference.firstIndex(atLeast: probe))
            }
        }
    }

    func testOldestFirstRemovalsEmptyTheList() {
        var list = SubjectSequences()
        for s in 1...10_000 as ClosedRange<UInt64> { list.append(s) }
        for s in 1...9_999 as ClosedRange<UInt64> {
            XCTAssertEqual(list.first, s)
            list.removeFirst()
        }
        XCTAssertEqual(Array(list), [10_000])
        list.removeFirst()
        XCTAssertTrue(list.isEmpty)
        list.append(10_001)
        XCTAssertEqual(Array(list), [10_001])
    }

    /// Removals anywhere and restores after the dead front was dropped (compaction) keep the order.
    func testChangesAfterACompaction() {
        var list = SubjectSequences()
        var reference = Array(1...3_000 as ClosedRange<UInt64>)
        list.append(contentsOf: reference)
        for _ in 0..<1_600 {  // past half of it: the front is dropped
            list.removeFirst()
            reference.removeFirst()
        }
        for s in [1_700, 2_999, 1_601] as [UInt64] {
            XCTAssertTrue(list.remove(s))
            reference.removeAll { $0 == s }
        }
        list.insert(2_999)
        reference.insert(2_999, at: reference.firstIndex(atLeast: 2_999))
        list.insert(1_650)  // held already: nothing changes
        list.removeFirst()
        reference.removeFirst()
        XCTAssertEqual(Array(list), reference)
        XCTAssertEqual(list.firstIndex(atLeast: 1_700), reference.firstIndex(atLeast: 1_700))
    }
}
