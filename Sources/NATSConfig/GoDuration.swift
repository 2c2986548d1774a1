// Duration literals: nats-server reads every duration string with Go's time.ParseDuration.

/// A port of Go's time.ParseDuration, which nats-server uses for every duration string: a sign, then
/// one or more decimal numbers each with a unit (ns, us, µs, ms, s, m, h), e.g. "1h30m" or "1.5s".
/// A unit is required except for "0".
public enum GoDuration {
    public struct Problem: Error, Equatable, Sendable { public var reason: String }

    static let unitNanoseconds: [String: UInt64] = [
        "ns": 1,
        "us": 1_000, "\u{00B5}s": 1_000, "\u{03BC}s": 1_000,  // both micro signs, as Go
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60 * 1_000_000_000,
        "h": 3_600 * 1_000_000_000,
    ]

    /// Go's Duration.String: "1.5s", "500ms", "2m0s", "1h0m1s" (nats-server prints durations this way).
    public static func text(nanoseconds n: Int64) -> String {
        if n == 0 { return "0s" }
        if n < 0 { return "-" + text(nanoseconds: n == .min ? .max : -n) }
        if n < 1_000 { return "\(n)ns" }
        func decimal(_ value: Int64, _ scale: Int64, _ unit: String) -> String {
            var fraction = String(value % scale)
            fraction = String(repeating: "0", count: String(scale).count - 1 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            return "\(value / scale)" + (fraction.isEmpty ? "" : "." + fraction) + unit
        }
        if n < 1_000_000 { return decimal(n, 1_000, "\u{00B5}s") }
        if n < 1_000_000_000 { return decimal(n, 1_000_000, "ms") }
        let seconds = decimal(n % 60_000_000_000, 1_000_000_000, "s")
        let minutes = n / 60_000_000_000
        if minutes == 0 { return seconds }
        if minutes < 60 { return "\(minutes)m" + seconds }
        return "\(minutes / 60)h\(minutes % 60)m" + seconds
    }

    /// The duration in nanoseconds.
    public static func parse(_ text: String) -> Result<Int64, Problem> {
        let invalid = Problem(reason: "invalid duration \"\(text)\"")
        let bytes = Array(text.utf8)
        var index = 0
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        if bytes[index...].elementsEqual("0".utf8) { return .success(0) }
        if index == bytes.count { return .failure(invalid) }

        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        let limit: UInt64 = 1 << 63  // |Int64.min|
        var total: UInt64 = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: ".") || isDigit(bytes[index]) else { return .failure(invalid) }
            // The integer part.
            var whole: UInt64 = 0
            let wholeStart = index
            while index < bytes.count, isDigit(bytes[index]) {
                guard whole <= (limit - 1) / 10 else { return .failure(invalid) }
                whole = whole * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                guard whole <= limit else { return .failure(invalid) }
                index += 1
            }
            let hasWhole = index != wholeStart
            // The fraction; digits beyond what fits are dropped, as Go does.
            var fraction: UInt64 = 0
            var scale: Double = 1
            var hasFraction = false
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                let fractionStart = index
                var overflowed = false
                while index < bytes.count, isDigit(bytes[index]) {
                    if !overflowed, fraction <= (limit - 1) / 10 {
                        fraction = fraction * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                        scale *= 10
                    } else {
                        overflowed = true
                    }
                    index += 1
                }
                hasFraction = index != fractionStart
            }
            if !hasWhole && !hasFraction { return .failure(invalid) }
            // The unit.
            let unitStart = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "."), !isDigit(bytes[index]) { index += 1 }
            if unitStart == index { return .failure(Problem(reason: "missing unit in duration \"\(text)\"")) }
            let unit = String(decoding: bytes[unitStart ..< index], as: UTF8.self)
            guard let multiplier = unitNanoseconds[unit] else {
                return .failure(Problem(reason: "unknown unit \"\(unit)\" in duration \"\(text)\""))
            }
            guard whole <= limit / multiplier else { return .failure(invalid) }
            var value = whole * multiplier
            if fraction > 0 {
                value += UInt64(Double(fraction) * (Double(multiplier) / scale))
                guard value <= limit else { return .failure(invalid) }
            }
            total += value
            guard total <= limit else { return .failure(invalid) }
        }
        if negative { return .success(total == limit ? Int64.min : -Int64(total)) }
        guard total <= UInt64(Int64.max) else { return .failure(invalid) }
        return .success(Int64(total))
    }
}
