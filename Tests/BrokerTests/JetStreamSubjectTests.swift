import XCTest

@testable import Broker

final class JetStreamSubjectTests: XCTestCase {
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
                XCTAssertEqual(JetStream.subjectMatches(filter: Array(f.utf8), subject: Array(s.utf8)), reference(f, s), "\(f) vs \(s)")
            }
        }
    }
}
