/// Saturating conversions and deadline arithmetic. Configuration bounds keep values sane, but
/// a deadline is `now + timeout` on a clock that may have run for days, and a rate can make a
/// delay infinite: these never trap and never wrap, they stop at the largest value.
extension UInt64 {
    /// `value` rounded up, clamped to `0...UInt64.max`; NaN is 0.
    public init(saturatingNanoseconds value: Double) {
        if value.isNaN || value <= 0 {
            self = 0
        } else if value >= 18_446_744_073_709_549_568 {  // the largest Double below 2^64
            self = .max
        } else {
            self = UInt64(value.rounded(.up))
        }
    }

    /// `self + other`, or `UInt64.max` when that overflows (a deadline that never comes).
    public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

extension Int64 {
    /// `value` clamped to `0...Int64.max` (what NIO's `TimeAmount.nanoseconds` takes).
    public init(saturatingNanoseconds value: UInt64) {
        self = value > UInt64(Int64.max) ? .max : Int64(value)
    }
}
