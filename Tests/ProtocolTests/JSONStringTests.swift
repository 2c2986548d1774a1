import Foundation
import Protocol
import XCTest

/// `JSONString.append` copies runs of plain bytes whole and escapes the rest as Foundation does: checked against
/// JSONSerialization on strings with escapes at the start, the end, side by side and between long plain runs.
final class JSONStringTests: XCTestCase {
    private func foundation(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        let text = String(decoding: data, as: UTF8.self)
        return String(text.dropFirst().dropLast())  // the array's brackets
    }

    private func ours(_ s: String) -> String {
        var out: [UInt8] = [0x2A]  // bytes already in the buffer stay
        JSONString.append(s, to: &out)
        XCTAssertEqual(out.first, 0x2A)
        return String(decoding: out.dropFirst(), as: UTF8.self)
    }

    func testEscapesWhereverTheyFall() {
        let cases = ["", "a", "\"", "\\", "\n", "plain text", "\"quoted\"", "a\\b", "tab\there", "\u{1}\u{2}x\u{1f}",
                     "ends with \n", "\r\nstarts", "mixed \"\\\n\t\u{8}\u{c} done", "ünïcödé ✓ 🚨", "a/b", "\u{7f}",
                     String(repeating: "x", count: 300) + "\"" + String(repeating: "y", count: 300)]
        for s in cases { XCTAssertEqual(ours(s), foundation(s), s.debugDescription) }
    }

    func testRandomStrings() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["a", "Z", "0", " ", "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{1}", "\u{1f}", "é", "✓", "🚨", "/"]
        for _ in 0..<500 {
            let s = String((0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            XCTAssertEqual(ours(s), foundation(s), s.debugDescription)
        }
    }
}
