/// Deadlines computed from what clients send (a `Nats-TTL` of centuries, a pause until the year 3000, a pull
/// request's `expires`, a NAK delay) are held at the ends of Int64 instead of trapping on overflow.
extension Int64 {
    /// `self + other`, held at `.max` / `.min`.
    func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self * other`, held at `.max` / `.min`.
    func saturatingMultiply(_ other: Int64) -> Int64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? ((self < 0) != (other < 0) ? .min : .max) : product
    }
}
