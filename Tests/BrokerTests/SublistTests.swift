import NIOCore
import XCTest

@testable import Broker

/// A plain value for the trie: the trie knows nothing of clients or internal handlers.
final class Entry: SublistEntry {
    let subjectBytes: [UInt8]
    let queueBytes: [UInt8]?
    init(_ subject: [UInt8], queue: [UInt8]? = nil) {
        subjectBytes = subject
        queueBytes = queue
    }
}

/// nats-server's sublist_test.go cases, on our trie and on the per-loop match cache in front of it.
final class SublistTests: XCTestCase {
    var sublist = Sublist<Entry>()

    private func sub(_ subject: String, queue: String? = nil) -> Entry {
        Entry(Array(subject.utf8), queue: queue.map { Array($0.utf8) })
    }

    private func plain(_ subject: String) -> Set<ObjectIdentifier> {
        Set(sublist.match(subject).plain.map(ObjectIdentifier.init))
    }

    func testInsertCount() throws {
        try sublist.insert(sub("foo"))
        try sublist.insert(sub("bar"))
        try sublist.insert(sub("foo.bar"))
        XCTAssertEqual(sublist.count, 3)
    }

    func testSimple() throws {
        let s = sub("foo")
        try sublist.insert(s)
        XCTAssertEqual(plain("foo"), [ObjectIdentifier(s)])
        XCTAssertTrue(sublist.match("bar").isEmpty)
    }

    func testSimpleMultiTokens() throws {
        let s = sub("foo.bar.baz")
        try sublist.insert(s)
        XCTAssertEqual(plain("foo.bar.baz"), [ObjectIdentifier(s)])
        XCTAssertTrue(sublist.match("foo.bar").isEmpty)
    }

    func testPartialWildcard() throws {
        let l = sub("a.b.c"), p = sub("a.*.c")
        try sublist.insert(l)
        try sublist.insert(p)
        XCTAssertEqual(plain("a.b.c"), [ObjectIdentifier(l), ObjectIdentifier(p)])
    }

    func testPartialWildcardAtEnd() throws {
        let l = sub("a.b.c"), p = sub("a.b.*")
        try sublist.insert(l)
        try sublist.insert(p)
        XCTAssertEqual(plain("a.b.c"), [ObjectIdentifier(l), ObjectIdentifier(p)])
    }

    func testFullWildcard() throws {
        let l = sub("a.b.c"), f = sub("a.>")
        try sublist.insert(l)
        try sublist.insert(f)
        XCTAssertEqual(plain("a.b.c"), [ObjectIdentifier(l), ObjectIdentifier(f)])
        XCTAssertEqual(plain("a.>"), [ObjectIdentifier(f)])
        XCTAssertTrue(sublist.match("a").isEmpty, "> needs at least one more token")
    }

    func testFalcoSubjects() throws {
        let star = sub("FALCO.*"), all = sub("FALCO.>"), crit = sub("FALCO.Critical")
        for s in [star, all, crit] { try sublist.insert(s) }
        XCTAssertEqual(plain("FALCO.Critical"), [ObjectIdentifier(star), ObjectIdentifier(all), ObjectIdentifier(crit)])
        XCTAssertEqual(plain("FALCO.Notice"), [ObjectIdentifier(star), ObjectIdentifier(all)])
        XCTAssertEqual(plain("FALCO.Notice.extra"), [ObjectIdentifier(all)])
        XCTAssertTrue(sublist.match("falco.notice").isEmpty, "subjects are case-sensitive")
    }

    func testRemove() throws {
        let s = sub("a.b.c.d")
        try sublist.insert(s)
        XCTAssertEqual(sublist.count, 1)
        XCTAssertFalse(sublist.remove(sub("a.b.c")), "removing something not there")
        XCTAssertTrue(sublist.remove(s))
        XCTAssertEqual(sublist.count, 0)
        XCTAssertTrue(sublist.match("a.b.c.d").isEmpty)
        XCTAssertFalse(sublist.remove(s), "second remove")
    }

    func testRemoveWildcard() throws {
        let subs = [sub("a.b.c.d"), sub("a.b.*.d"), sub("a.b.>"), sub("*.b.c.d")]
        for s in subs { try sublist.insert(s) }
        XCTAssertEqual(sublist.count, 4)
        XCTAssertEqual(sublist.match("a.b.c.d").plain.count, 4)
        for s in subs { XCTAssertTrue(sublist.remove(s)) }
        XCTAssertEqual(sublist.count, 0)
        XCTAssertTrue(sublist.match("a.b.c.d").isEmpty)
    }

    func testRemoveWithLargeSubs() throws {
        let subs = (0..<200).map { _ in sub("foo") }
        for s in subs { try sublist.insert(s) }
        XCTAssertEqual(sublist.match("foo").plain.count, 200)
        sublist.remove(subs[100])
        sublist.remove(subs[0])
        sublist.remove(subs[199])
        XCTAssertEqual(sublist.match("foo").plain.count, 197)
    }

    func testInvalidSubjectsInsert() {
        for subject in [".foo", "foo.", "foo..bar", "foo.bar..baz", "foo.>.baz", "foo.>.", ">.foo", ""] {
            XCTAssertThrowsError(try sublist.insert(sub(subject)), subject) {
                XCTAssertEqual($0 as? Sublist<Entry>.Error, .invalidSubject)
            }
        }
        XCTAssertEqual(sublist.count, 0)
    }

    func testBasicQueueResults() throws {
        let s = sub("foo")
        let bar1 = sub("foo", queue: "bar"), bar2 = sub("foo", queue: "bar")
        let baz1 = sub("foo", queue: "baz"), baz2 = sub("foo", queue: "baz"), baz3 = sub("foo", queue: "baz")
        try sublist.insert(s)
        try sublist.insert(bar1)
        var r = sublist.match("foo")
        XCTAssertEqual(r.plain.count, 1)
        XCTAssertEqual(r.queues.count, 1)
        XCTAssertEqual(r.queues[0].count, 1)
        for q in [bar2, baz1, baz2, baz3] { try sublist.insert(q) }
        r = sublist.match("foo")
        XCTAssertEqual(r.queues.map(\.count).sorted(), [2, 3])
        sublist.remove(bar1)
        sublist.remove(bar2)
        r = sublist.match("foo")
        XCTAssertEqual(r.queues.map(\.count), [3])
        for q in [baz1, baz2, baz3] { sublist.remove(q) }
        r = sublist.match("foo")
        XCTAssertEqual(r.plain.count, 1)
        XCTAssertTrue(r.queues.isEmpty)
    }

    func testTwoTokenPubMatchSingleTokenSub() throws {
        try sublist.insert(sub("foo"))
        XCTAssertEqual(sublist.match("foo").plain.count, 1)
        XCTAssertTrue(sublist.match("foo.bar").isEmpty)
    }

    func testWildcardsAsLiterals() throws {
        for subject in ["foo.*-", "foo.>-"] {
            let s = sub(subject)
            try sublist.insert(s)
            XCTAssertTrue(sublist.match("foo.bar").isEmpty, subject)
            XCTAssertEqual(sublist.match(subject).plain.count, 1, subject)
            XCTAssertTrue(sublist.remove(s))
        }
    }

    func testMatchWithEmptyTokens() throws {
        try sublist.insert(sub(">"))
        try sublist.insert(sub(">", queue: "queue"))
        for subject in [".foo", "..foo", "foo..", "foo.", "foo..bar", "foo...bar"] {
            XCTAssertTrue(sublist.match(subject).isEmpty, subject)
        }
    }

    func testSubjectsCompareAsBytesNotAsUnicode() throws {
        // "café" composed vs decomposed are canonically equal Strings but different subjects to nats-server.
        let composed = Entry([0x63, 0x61, 0x66, 0xC3, 0xA9])
        let invalid = Entry([0x66, 0xFF, 0x6F])
        try sublist.insert(composed)
        try sublist.insert(invalid)
        XCTAssertTrue(sublist.match([0x63, 0x61, 0x66, 0x65, 0xCC, 0x81]).isEmpty)
        XCTAssertEqual(sublist.match([0x63, 0x61, 0x66, 0xC3, 0xA9]).plain.count, 1)
        XCTAssertTrue(sublist.match([0x66, 0xFE, 0x6F]).isEmpty, "invalid UTF-8 must not collapse to U+FFFD")
        XCTAssertEqual(sublist.match([0x66, 0xFF, 0x6F]).plain.count, 1)
    }

    func testGenerationChangesOnInsertAndRemove() throws {
        let g0 = sublist.generation.load(ordering: .relaxed)
        let s = sub("foo")
        try sublist.insert(s)
        let g1 = sublist.generation.load(ordering: .relaxed)
        XCTAssertNotEqual(g0, g1)
        sublist.remove(s)
        XCTAssertNotEqual(g1, sublist.generation.load(ordering: .relaxed))
    }
}
