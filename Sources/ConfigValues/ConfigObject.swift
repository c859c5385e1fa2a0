/// A configuration error: the JSON path of the offending value and what was expected.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A JSON path such as `stages[2].config.max_failures` (empty for the document itself).
    public let path: String
    public let message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    /// One line: control characters in the path or the message are escaped, so a key or value
    /// with a newline in it cannot split an error into lines that do not name the file.
    public var description: String {
        let text = path.isEmpty ? message : "\(path): \(message)"
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var out = ""
        JSONValue.quote(text, into: &out)
        return String(out.dropFirst().dropLast())
    }
}

/// Reads one JSON object of a configuration with typed, path-aware accessors, and rejects the
/// keys nobody asked for (`finish()`), so a typo such as `confg` is an error with its path
/// instead of a silently ignored setting.
public final class ConfigObject {
    public let path: String
    public let members: [(String, JSONValue)]
    private var known: [String] = []

    /// Wraps `value`, which must be an object.
    public init(_ value: JSONValue, path: String) throws(ConfigError) {
        guard case .object(let members) = value else {
            throw ConfigError(path: path, "expected an object, found \(value.typeName)")
        }
        self.path = path
        self.members = members
    }

    /// The JSON path of member `key`: `a.b` for a plain key, `a["odd key"]` (quoted and escaped)
    /// for one that is not letters, digits, `_` and `-`.
    public func path(of key: String) -> String {
        let plain = !key.isEmpty && key.utf8.count <= 80 && key.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D
        }
        if !plain { return "\(path)[\(key.quotedForMessage())]" }
        return path.isEmpty ? key : "\(path).\(key)"
    }

    /// The raw value of `key`, marking the key as known.
    public func value(_ key: String) -> JSONValue? {
        known.append(key)
        return members.last { $0.0 == key }?.1
    }

    /// Marks `keys` as allowed without reading them: keys whose values are read some other way
    /// (iterating `members`), or that are accepted and ignored (`$schema`).
    public func markKnown(_ keys: String...) {
        known.append(contentsOf: keys)
    }

    /// Throws for the first key that no accessor asked for, listing the keys that are allowed.
    public func finish() throws(ConfigError) {
        for (key, _) in members where !known.contains(key) {
            let allowed = known.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            throw ConfigError(path: path(of: key), "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
        }
    }

    private func fail(_ key: String, _ expected: String, _ found: JSONValue) -> ConfigError {
        ConfigError(path: path(of: key), "expected \(expected), found \(found.jsonText)")
    }

    public func string(_ key: String) throws(ConfigError) -> String? {
        guard let v = value(key), v != .null else { return nil }
        guard case .string(let s) = v else { throw fail(key, "a string", v) }
        return s
    }

    public func requiredString(_ key: String) throws(ConfigError) -> String {
        guard let s = try string(key) else { throw ConfigError(path: path(of: key), "required string is missing") }
        return s
    }

    /// A string that must be one of `choices`.
    public func choice(_ key: String, _ choices: [String], default fallback: String) throws(ConfigError) -> String {
        guard let s = try string(key) else { return fallback }
        guard choices.contains(s) else {
            throw ConfigError(path: path(of: key), "expected one of \(choices.map { "\"\($0)\"" }.joined(separator: ", ")), found \(s.quotedForMessage())")
        }
        return s
    }

    public func bool(_ key: String, default fallback: Bool) throws(ConfigError) -> Bool {
        try bool(key) ?? fallback
    }

    /// A boolean, or nil when the key is absent or null.
    public func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let v = value(key), v != .null else { return nil }
        guard case .bool(let b) = v else { throw fail(key, "true or false", v) }
        return b
    }

    /// A number within `range`.
    public func double(_ key: String, default fallback: Double? = nil,
                       in range: ClosedRange<Double> = -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude,
                       rangeText: String? = nil) throws(ConfigError) -> Double? {
        guard let v = value(key), v != .null else { return fallback }
        guard case .number(let n) = v else { throw fail(key, "a number", v) }
        guard range.contains(n) else {
            throw ConfigError(path: path(of: key), "expected \(rangeText ?? "a number in \(range)"), found \(v.jsonText)")
        }
        return n
    }

    /// A whole number within `range`.
    public func int(_ key: String, default fallback: Int? = nil, in range: ClosedRange<Int> = Int.min...Int.max,
                    rangeText: String? = nil) throws(ConfigError) -> Int? {
        guard let v = value(key), v != .null else { return fallback }
        guard case .number(let n) = v, n == n.rounded(), abs(n) < 9e15 else { throw fail(key, "a whole number", v) }
        let i = Int(n)
        guard range.contains(i) else {
            throw ConfigError(path: path(of: key), "expected \(rangeText ?? "a whole number in \(range.lowerBound)...\(range.upperBound)"), found \(v.jsonText)")
        }
        return i
    }

    /// A duration string with a unit ("250ms", "30s", "5m"), in nanoseconds, within
    /// `minimum...maximum` (by default at most `Units.maximumDuration`, 30 days).
    public func duration(_ key: String, default fallback: UInt64? = nil, minimum: UInt64 = 0,
                         maximum: UInt64 = Units.maximumDuration) throws(ConfigError) -> UInt64? {
        guard let v = value(key), v != .null else { return fallback }
        guard case .string(let s) = v, let value = Units.parseDurationValue(s) else {
            throw fail(key, "a duration with a unit such as \"250ms\", \"30s\", \"5m\"", v)
        }
        guard value <= Double(maximum) else {
            throw ConfigError(path: path(of: key), "expected at most \(Units.formatDuration(maximum)), found \(v.jsonText)")
        }
        let ns = UInt64(value.rounded())
        guard ns >= minimum else {
            throw ConfigError(path: path(of: key), "expected at least \(Units.formatDuration(minimum)), found \(v.jsonText)")
        }
        return ns
    }

    /// A size: a number of bytes or a string with a unit ("64KiB", "10MB"), within `range`
    /// (by default at most `Units.maximumSize`, 1 PiB).
    public func size(_ key: String, default fallback: UInt64? = nil,
                     in range: ClosedRange<UInt64> = 0...Units.maximumSize) throws(ConfigError) -> UInt64? {
        guard let v = value(key), v != .null else { return fallback }
        let parsed: Double? = switch v {
        case .number(let n) where n >= 0 && n == n.rounded(): n
        case .string(let s): Units.parseSizeValue(s)
        default: nil
        }
        guard let bytes = parsed else { throw fail(key, "a size in bytes, or a string such as \"64KiB\"", v) }
        guard bytes >= Double(range.lowerBound), bytes <= Double(range.upperBound) else {
            throw ConfigError(path: path(of: key), "expected a size of \(range.lowerBound)...\(range.upperBound) bytes, found \(v.jsonText)")
        }
        return UInt64(bytes.rounded())
    }

    /// A byte rate within `range` bytes per second: a number, or a string such as "1MiB/s".
    /// The default range starts at 1 B/s: below that the delay to the next byte is longer than
    /// any timeout, which is a typo, not a limit.
    public func rate(_ key: String, default fallback: Double? = nil,
                     in range: ClosedRange<Double> = 1...Double(Units.maximumSize),
                     rangeText: String = "from 1 B/s to 1PiB/s") throws(ConfigError) -> Double? {
        guard let v = value(key), v != .null else { return fallback }
        let parsed: Double? = switch v {
        case .number(let n): n
        case .string(let s): Units.parseRateValue(s)
        default: nil
        }
        guard let rate = parsed, rate > 0 else {
            throw fail(key, "a positive rate in bytes per second, or a string such as \"1MiB/s\"", v)
        }
        guard range.contains(rate) else {
            throw ConfigError(path: path(of: key), "expected a rate \(rangeText), found \(v.jsonText)")
        }
        return rate
    }

    // MARK: reads with a default: the value, never an Optional

    /// A number within `range`, or `fallback` when absent.
    public func double(_ key: String, default fallback: Double,
                       in range: ClosedRange<Double> = -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude,
                       rangeText: String? = nil) throws(ConfigError) -> Double {
        try double(key, default: Optional(fallback), in: range, rangeText: rangeText) ?? fallback
    }

    /// A whole number within `range`, or `fallback` when absent.
    public func int(_ key: String, default fallback: Int, in range: ClosedRange<Int> = Int.min...Int.max,
                    rangeText: String? = nil) throws(ConfigError) -> Int {
        try int(key, default: Optional(fallback), in: range, rangeText: rangeText) ?? fallback
    }

    /// A duration in nanoseconds within `minimum...maximum`, or `fallback` when absent.
    public func duration(_ key: String, default fallback: UInt64, minimum: UInt64 = 0,
                         maximum: UInt64 = Units.maximumDuration) throws(ConfigError) -> UInt64 {
        try duration(key, default: Optional(fallback), minimum: minimum, maximum: maximum) ?? fallback
    }

    /// A size in bytes within `range`, or `fallback` when absent.
    public func size(_ key: String, default fallback: UInt64,
                     in range: ClosedRange<UInt64> = 0...Units.maximumSize) throws(ConfigError) -> UInt64 {
        try size(key, default: Optional(fallback), in: range) ?? fallback
    }

    /// A byte rate within `range`, or `fallback` when absent.
    public func rate(_ key: String, default fallback: Double,
                     in range: ClosedRange<Double> = 1...Double(Units.maximumSize),
                     rangeText: String = "from 1 B/s to 1PiB/s") throws(ConfigError) -> Double {
        try rate(key, default: Optional(fallback), in: range, rangeText: rangeText) ?? fallback
    }

    /// A nested object, or nil when absent.
    public func object(_ key: String) throws(ConfigError) -> ConfigObject? {
        guard let v = value(key), v != .null else { return nil }
        return try ConfigObject(v, path: path(of: key))
    }

    /// An array's items with their paths, or nil when absent.
    public func array(_ key: String) throws(ConfigError) -> [(path: String, value: JSONValue)]? {
        guard let v = value(key), v != .null else { return nil }
        guard case .array(let items) = v else { throw fail(key, "an array", v) }
        return items.enumerated().map { ("\(path(of: key))[\($0.offset)]", $0.element) }
    }
}
