import XCTest

import Protocol

final class SubjectMatchTests: XCTestCase {
    /// The split-based definition the byte matcher replaced, kept here as the reference.
    private func reference(_ filter: String, _ subject: String) -> Bool {
        let f = filter.split(separator: ".", omittingEmptySubsequences: false)
        let s = subject.split(separator: ".", omittingEmptySubsequences: false)
        for (i, token) in f.enumerated() {
            if token == ">" { return s.count > i }
            guard i < s.count else { return false }
            if token == "*" { continue }
            if token != s[i] { return false }
        }
        return f.count == s.count
    }

    func testByteMatcherAgreesWithTheReference() {
        let filters = ["FALCO.>", "FALCO.*", "FALCO.Critical", ">", "*", "*.*", "a.*.c", "a.>", "a.b.>", "a", "a.b"]
        let subjects = ["FALCO.Critical", "FALCO", "FALCO.Notice.x", "a", "a.b", "a.b.c", "a.x.c", "a.b.c.d", "b", "FALCOX.y", "a.bc"]
        for f in filters {
            for s in subjects {
                XCTAssertEqual(Subject.matches(filter: Array(f.utf8), subject: Array(s.utf8)), reference(f, s), "\(f) vs \(s)")
            }
        }
    }

    func testEmptyTokensMatchNothing() {
        for f in [">", "*.*", "a.>", "a.*"] {
            for s in ["a..b", ".a", "a.", ""] {
                XCTAssertFalse(Subject.matches(filter: f, subject: s), "\(f) vs \(s)")
            }
        }
    }

    private struct Recorder: SubjectCaptures {
        var tokens: [Range<Int>] = []
        var rest: Range<Int>?
        mutating func token(_ range: Range<Int>) { tokens.append(range) }
        mutating func rest(_ range: Range<Int>) { rest = range }
    }

    func testCapturesWhatEachWildcardTook() {
        var r = Recorder()
        let f = Array("a.*.c.*.>".utf8), s = Array("a.bb.c.d.e.f".utf8)
        let matched = f.withUnsafeBytes { fb in s.withUnsafeBytes { sb in Subject.matches(filter: fb, subject: sb, captures: &r) } }
        XCTAssertTrue(matched)
        XCTAssertEqual(r.tokens, [2..<4, 7..<8])
        XCTAssertEqual(r.rest, 9..<12)
    }

    func testOverlaps() {
        XCTAssertTrue(Subject.overlaps("FALCO.>", "FALCO.Critical"))
        XCTAssertTrue(Subject.overlaps("FALCO.*", "*.Critical"))
        XCTAssertTrue(Subject.overlaps(">", "a.b.c"))
        XCTAssertFalse(Subject.overlaps("FALCO.*", "FALCO.a.b"))
        XCTAssertFalse(Subject.overlaps("a.b", "a.c"))
        XCTAssertFalse(Subject.overlaps("a.>", "a"))
        XCTAssertTrue(Subject.overlaps("a.*.c", "a.b.*"))
    }
}
