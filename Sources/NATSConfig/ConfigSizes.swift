// Size literals (`64KB`, `1m`), as nats-server's conf/parse.go reads them.

extension ConfigParser {
    // MARK: Sizes

    /// Multipliers for the size suffixes nats-server's parser knows (conf/parse.go): a bare letter
    /// is decimal (k = 1000), the letter followed by b, i or ib is binary (kb = ki = kib = 1024).
    static let sizeMultipliers: [String: Int64] = {
        var table: [String: Int64] = [:]
        var decimal: Int64 = 1
        var binary: Int64 = 1
        for letter in ["k", "m", "g", "t", "p", "e"] {
            decimal *= 1000
            binary *= 1024
            table[letter] = decimal
            for binarySuffix in ["b", "i", "ib"] { table[letter + binarySuffix] = binary }
        }
        return table
    }()

    /// Reads `1MB`, `64kb`, `1000` or `-5k` as a number of bytes; nil if it is not a size or overflows.
    public static func parseSize(_ text: String) -> Int64? {
        let negative = text.hasPrefix("-")
        let body = negative ? text.dropFirst() : Substring(text)
        let digits = body.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, let magnitude = Int64(negative ? "-" + digits : String(digits)) else { return nil }
        let suffix = body.dropFirst(digits.count).lowercased()
        if suffix.isEmpty { return magnitude }
        guard let multiplier = sizeMultipliers[suffix] else { return nil }
        let (product, overflow) = magnitude.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }
}
