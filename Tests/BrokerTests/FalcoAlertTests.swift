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
