/// Quantities with units as pipeline files write them (SPEC §3): durations (`"250ms"`,
/// `"30s"`, `"5m"`, `"1h"`), sizes (`"64KiB"`, `"10MB"`) and byte rates (`"1MiB/s"`).
public enum Units {
    /// Nanoseconds in a duration string, or nil when it is not one. A bare `"0"` is zero.
    /// Units: ns, us (µs), ms, s, m, h, d; a number may have a fraction ("1.5s").
    public static func parseDuration(_ text: String) -> UInt64? {
        let t = text.trimmingSpaces
        if t == "0" { return 0 }
        let scales: [(String, Double)] = [
            ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9),
            ("h", 3600e9), ("d", 86400e9),
        ]
        for (unit, scale) in scales where t.hasSuffix(unit) {
            let number = String(t.dropLast(unit.count))
            // "ms" also ends in "s": make sure what remains is a plain number.
            guard let value = Double(number), value >= 0, value.isFinite,
                  number.allSatisfy({ $0.isNumber || $0 == "." })
            else { continue }
            let ns = value * scale
            guard ns < Double(UInt64.max) else { return nil }
            return UInt64(ns.rounded())
        }
        return nil
    }

    /// Bytes in a size string ("512", "64KiB", "10MB", "1.5GiB"), or nil.
    public static func parseSize(_ text: String) -> UInt64? {
        let t = text.trimmingSpaces
        let scales: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024),
            ("kB", 1e3), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1), ("", 1),
        ]
        for (unit, scale) in scales where t.hasSuffix(unit) {
            let number = String(t.dropLast(unit.count)).trimmingSpaces
            guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }),
                  let value = Double(number), value.isFinite
            else { continue }
            let bytes = value * scale
            guard bytes < Double(UInt64.max) else { return nil }
            return UInt64(bytes.rounded())
        }
        return nil
    }

    /// Bytes per second in a rate string ("1MiB/s", "500KB/s", "1024"), or nil.
    public static func parseRate(_ text: String) -> Double? {
        var t = text.trimmingSpaces
        if t.hasSuffix("/s") { t.removeLast(2) }
        return parseSize(t).map { Double($0) }  // not Double.init: that would pick init(bitPattern:)
    }

    /// A duration for humans: "250ms", "30s", "5m".
    public static func formatDuration(_ ns: UInt64) -> String {
        if ns == 0 { return "0s" }
        for (unit, scale) in [("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000),
                              ("ms", 1_000_000), ("us", 1000)] as [(String, UInt64)]
        where ns % scale == 0 {
            return "\(ns / scale)\(unit)"
        }
        return "\(ns)ns"
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
