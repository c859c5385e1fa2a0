/// Quantities with units as pipeline files write them (`docs/pipeline-reference.md`): durations
/// (`"250ms"`, `"30s"`, `"5m"`, `"1h"`), sizes (`"64KiB"`, `"10MB"`) and byte rates
/// (`"1MiB/s"`).
///
/// The grammar is strict, as an operator reading the file expects: digits, an optional fraction
/// with at least one digit after the point, then the unit, with no sign and no space around
/// (`" 5s"`, `"5.s"`, `"+5s"` and `"5 s"` are errors, not five seconds). A size's unit alone
/// may follow one space (`"64 KiB"`), as pipeline.schema.json has always allowed.
public enum Units {
    /// The largest duration any setting takes: 30 days. Longer is an operator's typo, and it
    /// keeps `now + timeout` far from the end of the 64-bit nanosecond clock.
    public static let maximumDuration: UInt64 = 30 * 86_400 * 1_000_000_000

    /// The largest size any setting takes: 1 PiB (exact in a Double, far from 2^64).
    public static let maximumSize: UInt64 = 1 << 50

    /// Nanoseconds in a duration string, or nil when it is not one. A bare `"0"` is zero.
    /// Units: ns, us (µs), ms, s, m, h, d; a number may have a fraction ("1.5s"). Values above
    /// `maximumDuration` are nil (`ConfigObject.duration` says so with the bound).
    public static func parseDuration(_ text: String) -> UInt64? {
        guard let ns = parseDurationValue(text), ns <= Double(maximumDuration) else { return nil }
        return UInt64(ns.rounded())
    }

    /// A duration string's nanoseconds, unbounded (may exceed 2^64); nil when malformed.
    public static func parseDurationValue(_ text: String) -> Double? {
        if text == "0" { return 0 }
        let scales: [(String, Double)] = [
            ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9),
            ("h", 3600e9), ("d", 86400e9),
        ]
        // "ms" also ends in "s": the first unit whose remainder is a plain number wins.
        for (unit, scale) in scales where text.hasSuffix(unit) {
            if let value = plainNumber(String(text.dropLast(unit.count))) { return value * scale }
        }
        return nil
    }

    /// Bytes in a size string ("512", "64KiB", "10MB", "1.5GiB"), or nil. Values above
    /// `maximumSize` are nil.
    public static func parseSize(_ text: String) -> UInt64? {
        guard let bytes = parseSizeValue(text), bytes <= Double(maximumSize) else { return nil }
        return UInt64(bytes.rounded())
    }

    /// A size string's bytes, unbounded; nil when malformed.
    public static func parseSizeValue(_ text: String) -> Double? {
        let scales: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024),
            ("kB", 1e3), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1), ("", 1),
        ]
        for (unit, scale) in scales where text.hasSuffix(unit) {
            var number = text.dropLast(unit.count)
            // One space may separate a number from a size unit ("64 KiB"), as the schema says.
            if !unit.isEmpty, number.hasSuffix(" ") { number = number.dropLast() }
            if let value = plainNumber(String(number)) { return value * scale }
        }
        return nil
    }

    /// Bytes per second in a rate string ("1MiB/s", "500KB/s", "1024"), or nil.
    public static func parseRate(_ text: String) -> Double? {
        guard let rate = parseRateValue(text), rate <= Double(maximumSize) else { return nil }
        return rate
    }

    /// A rate string's bytes per second, unbounded; nil when malformed.
    public static func parseRateValue(_ text: String) -> Double? {
        parseSizeValue(text.hasSuffix("/s") ? String(text.dropLast(2)) : text)
    }

    /// `digits` or `digits.digits`, nothing else (no sign, space, exponent or bare point).
    static func plainNumber(_ text: String) -> Double? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }),
              parts[0].count <= 20, let value = Double(text), value.isFinite
        else { return nil }
        return value
    }

    /// A duration for humans: "250ms", "30s", "5m".
    public static func formatDuration(_ ns: UInt64) -> String {
        if ns == 0 { return "0s" }
        for (unit, scale) in [("d", 86_400_000_000_000), ("h", 3_600_000_000_000), ("m", 60_000_000_000),
                              ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1000)] as [(String, UInt64)]
        where ns % scale == 0 {
            return "\(ns / scale)\(unit)"
        }
        return "\(ns)ns"
    }
}

extension String {
    /// This string as a JSON string literal, for error messages: quotes, backslashes and
    /// control characters escaped (so a message stays one line), and cut to `limit` characters
    /// with "…" so a 70,000-character value does not flood a terminal.
    public func quotedForMessage(limit: Int = 80) -> String {
        var out = ""
        let cut = count > limit
        JSONValue.quote(cut ? String(prefix(limit)) : self, into: &out)
        return cut ? String(out.dropLast()) + "…\"" : out
    }
}
