import Foundation
import XCTest

@testable import Broker

/// MonitorJSON must write exactly what JSONSerialization wrote for the monitoring documents before it.
final class MonitorJSONTests: XCTestCase {
    private func foundation(_ object: [String: Any]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    private func assertSame(_ object: [String: Any], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(MonitorJSON.string(object), foundation(object), file: file, line: line)
    }

    func testScalarsContainersAndNesting() {
        assertSame([:])
        assertSame(["a": 1, "b": "x", "c": true, "d": false, "e": NSNull()])
        assertSame(["list": [1, 2, 3], "empty_list": [Any](), "empty_object": [String: Any](),
                    "nested": ["z": [["k": "v"], [String: Any](), [Any]()], "a": ["deep": ["deeper": [1]]]]])
        assertSame(["ints": [Int.max, Int.min, 0, -1], "i64": Int64(-5), "u64": UInt64.max, "i32": Int32(7),
                    "u32": UInt32(8), "uint": UInt(9)])
        assertSame(["sorted": ["b": 1, "a": 2, "B": 3, "_": 4, "a0": 5, "é": 6]])
    }

    func testDoubles() {
        let values: [Double] = [0, -0.0, 1, -1, 0.5, 0.1, 1.0 / 3.0, 2.5e-5, 1e-7, 123456.789, 1e14, 1e15, 1e16, 1e21,
                                12345678901234.5, 0.999999999, Double(UInt32.max), 3.0e-300, 98.76]
        for value in values {
            assertSame(["v": value])
        }
        assertSame(["rates": values])
    }

    func testStringsAreEscapedAsFoundationDoes() {
        let strings = ["plain", "quote \" and \\ backslash", "a/b/c", "line\nfeed\r\ttab", "\u{08}\u{0C}",
                       "\u{01}\u{1F}\u{7F}", "unicode: é ü 日本 🙂", "", "tab\tend"]
        for s in strings {
            assertSame([s: s])
        }
    }

    func testAnUnknownTypeFallsBackToFoundation() {
        let object: [String: Any] = ["n": NSNumber(value: 3), "s": "x"]
        XCTAssertEqual(MonitorJSON.string(object), foundation(object))
    }
}

extension MonitorJSONTests {
    func testKeyOrderWithDigitsAndCase() {
        assertSame(["a10": 1, "a2": 2, "a_b": 3, "ab": 4, "A": 5, "a": 6, "Z9": 7, "z10": 8, "in_msgs": 9, "in_bytes": 10,
                    "x-y": 11, "x_y": 12, "xy": 13])
    }
}

extension MonitorJSONTests {
    /// The byte-order fast path for keys of lower-case letters and `_` agrees with Foundation's collation.
    func testRandomSimpleKeysSortAsFoundationDoes() {
        var rng = SplitMix64(seed: 7)
        let alphabet = Array("ab_z".utf8)
        for _ in 0..<50 {
            var object: [String: Any] = [:]
            for i in 0..<12 {
                let length = Int(rng.next() % 4) + 1
                let key = String(decoding: (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }, as: UTF8.self)
                object[key] = i
            }
            assertSame(object)
        }
    }
}

/// JetStream.timestamp writes its digits itself: the same text as the String(format:) it replaced.
final class TimestampTests: XCTestCase {
    func testTimestampsMatchTheFormattedText() {
        let samples: [Int64] = [0, 1, 999_999_999, 1_000_000_000, 1_764_950_400_123_456_789, 4_102_444_799_999_999_999,
                                951_782_400_000_000_007, 2_147_483_648_000_000_000]
        for nanoseconds in samples {
            var t = time_t(nanoseconds / 1_000_000_000)
            var parts = tm()
            gmtime_r(&t, &parts)
            let expected = String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                                  parts.tm_hour, parts.tm_min, parts.tm_sec, Int(nanoseconds % 1_000_000_000))
            XCTAssertEqual(JetStream.timestamp(nanoseconds: nanoseconds), expected)
        }
    }
}
