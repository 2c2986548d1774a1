import NIOCore
import XCTest

@testable import Protocol

final class SubjectTests: XCTestCase {
    func testSubscriptionSubjects() {
        for valid in ["foo", "foo.bar", "FALCO.*", "FALCO.>", "*", ">", "*.*", "foo.*.bar", "foo*.bar", "f>o", "_INBOX.abc.123"] {
            XCTAssertTrue(Subject.isValidSubscription(valid), valid)
            XCTAssertTrue(Subject.isValidSubscription(ByteBuffer(string: valid)), valid)
        }
        for invalid in ["", ".", "foo.", ".foo", "foo..bar", "foo.>.bar", ">.foo", "foo bar", "foo\tbar"] {
            XCTAssertFalse(Subject.isValidSubscription(invalid), invalid)
        }
    }

    func testPublishSubjects() {
        for valid in ["foo", "FALCO.Critical", "foo*.bar", "a.b.c.d"] {
            XCTAssertTrue(Subject.isValidPublish(valid), valid)
        }
        for invalid in ["FALCO.*", "FALCO.>", "*", ">", "foo..bar", "", "foo."] {
            XCTAssertFalse(Subject.isValidPublish(invalid), invalid)
        }
    }
}
