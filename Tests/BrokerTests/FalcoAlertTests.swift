import Foundation
import XCTest

@testable import Broker

final class FalcoAlertUTF8Tests: XCTestCase {
    func testOnlyWellFormedUTF8IsAccepted() {
        func check(_ bytes: [UInt8]) -> Bool {
            let alert = Array(#"{"priority":"Notice","rule":"r","output":""#.utf8) + bytes + Array(#""}"#.utf8)
            if case .success = FalcoAlert.validate(alert) { return true }
            return false
        }
        XCTAssertTrue(check(Array("Überwachung ✓ 🚨 узел".utf8)))
        XCTAssertFalse(check([0xC0, 0xAF]), "overlong /")
        XCTAssertFalse(check([0xE0, 0x80, 0xAF]), "overlong 3-byte")
        XCTAssertFalse(check([0xED, 0xA0, 0x80]), "encoded surrogate")
        XCTAssertFalse(check([0xF0, 0x80, 0x80, 0xAF]), "overlong 4-byte")
        XCTAssertFalse(check([0xF4, 0x90, 0x80, 0x80]), "above U+10FFFF")
        XCTAssertFalse(check([0xE2, 0x9C]), "truncated")
    }
}

/// A key brokerd routes or labels by (priority, rule, hostname, source, uuid) may appear once: JSON readers
/// disagree on which of two values counts, so a consumer could read another priority than brokerd routed by.
final class FalcoAlertDuplicateKeyTests: XCTestCase {
    private func rejection(_ text: String) -> FalcoAlert.Rejection? {
        if case .failure(let rejection) = FalcoAlert.validate(Array(text.utf8)) { return rejection }
        return nil
    }

    func testARoutedKeyTwiceIsRejected() {
        for key in ["priority", "rule", "hostname", "source", "uuid"] {
            let text = #"{"priority":"Debug","rule":"r","hostname":"h","source":"syscall","uuid":"u","output":"o","\#(key)":"Emergency"}"#
            let r = rejection(text)
            XCTAssertEqual(r?.reason, .duplicateKey, key)
            XCTAssertEqual(r?.reason.rawValue, "duplicate_key")
            XCTAssertEqual(r?.detail, #"duplicate key "\#(key)": brokerd routes and labels by it, and JSON readers disagree on which value counts"#)
        }
        // Whatever the values' types: a second priority that is not a string is just as ambiguous.
        XCTAssertEqual(rejection(#"{"priority":"Notice","priority":null}"#)?.reason, .duplicateKey)
        XCTAssertEqual(rejection(#"{"priority":"Notice","priority":"Notice"}"#)?.reason, .duplicateKey)
    }

    func testSpellingsOtherReadersTakeForTheSameKeyAreDuplicatesToo() {
        // An escaped key is the same key once decoded.
        XCTAssertEqual(rejection(#"{"priority":"Debug","pri\u006frity":"Emergency"}"#)?.detail.hasPrefix(#"duplicate key "priority""#), true)
        // Go's encoding/json (falcosidekick) matches keys ignoring case, with Unicode simple folding.
        XCTAssertEqual(rejection(#"{"priority":"Debug","PRIORITY":"Emergency"}"#)?.reason, .duplicateKey)
        XCTAssertEqual(rejection(#"{"Rule":"a","priority":"Debug","rule":"b"}"#)?.detail.hasPrefix(#"duplicate key "rule""#), true)
        XCTAssertEqual(rejection("{\"priority\":\"Debug\",\"source\":\"a\",\"\u{17F}ource\":\"b\"}")?.reason, .duplicateKey)
        XCTAssertEqual(rejection("{\"priority\":\"Debug\",\"hostname\":\"a\",\"HOSTNAME\":\"b\"}")?.reason, .duplicateKey)
    }

    func testOtherKeysMayRepeatAndNestedOnesAreNotRouted() throws {
        // brokerd neither routes nor labels by output, time, tags or output_fields: their repeats are the
        // consumers' business, as is a "priority" inside output_fields.
        let text = #"{"priority":"Notice","output":"a","output":"b","time":"t","time":"u","tags":[],"tags":["x"],"#
            + #""output_fields":{"priority":"Emergency","priority":"Debug","k":1,"k":2},"output_fields":{}}"#
        guard case .success(let alert) = FalcoAlert.validate(Array(text.utf8)) else { return XCTFail("rejected") }
        XCTAssertEqual(alert.priority, "Notice")
        // A lone differently-cased key is no duplicate: brokerd reads only the exact name.
        guard case .success(let other) = FalcoAlert.validate(Array(#"{"priority":"Notice","Rule":"x"}"#.utf8)) else {
            return XCTFail("rejected")
        }
        XCTAssertNil(other.rule)
        XCTAssertEqual(rejection(#"{"Priority":"Notice"}"#)?.reason, .missingPriority)
    }

    func testInvalidJSONIsReportedBeforeADuplicate() {
        XCTAssertEqual(rejection(#"{"priority":"Debug","priority":"Emergency""#)?.reason, .invalidJSON)
    }
}
