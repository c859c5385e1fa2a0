/// A configuration error: the JSON path of the offending value and what was expected.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A JSON path such as `stages[2].config.max_failures` (empty for the document itself).
    public let path: String
    public let message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
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

    /// The JSON path of member `key`.
    public func path(of key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The raw value of `key`, marking the key as known.
    public func value(_ key: String) -> JSONValue? {
        known.append(key)
        return members.last { $0.0 == key }?.1
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
            throw ConfigError(path: path(of: key), "expected one of \(choices.map { "\"\($0)\"" }.joined(separator: ", ")), found \"\(s)\"")
        }
        return s
    }

    public func bool(_ key: String, default fallback: Bool) throws(ConfigError) -> Bool {
        guard let v = value(key), v != .null else { return fallback }
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

    /// A duration string with a unit ("250ms", "30s", "5m"), in nanoseconds.
    public func duration(_ key: String, default fallback: UInt64? = nil, minimum: UInt64 = 0) throws(ConfigError) -> UInt64? {
        guard let v = value(key), v != .null else { return fallback }
        guard case .string(let s) = v, let ns = Units.parseDuration(s) else {
            throw fail(key, "a duration with a unit such as \"250ms\", \"30s\", \"5m\"", v)
        }
        guard ns >= minimum else {
            throw ConfigError(path: path(of: key), "expected at least \(Units.formatDuration(minimum)), found \(v.jsonText)")
        }
        return ns
    }

    /// A size: a number of bytes or a string with a unit ("64KiB", "10MB").
    public func size(_ key: String, default fallback: UInt64? = nil) throws(ConfigError) -> UInt64? {
        guard let v = value(key), v != .null else { return fallback }
        switch v {
        case .number(let n) where n >= 0 && n == n.rounded(): return UInt64(n)
        case .string(let s): if let bytes = Units.parseSize(s) { return bytes }
        default: break
        }
        throw fail(key, "a size in bytes, or a string such as \"64KiB\"", v)
    }

    /// A byte rate: bytes per second as a number, or a string such as "1MiB/s".
    public func rate(_ key: String, default fallback: Double? = nil) throws(ConfigError) -> Double? {
        guard let v = value(key), v != .null else { return fallback }
        switch v {
        case .number(let n) where n > 0: return n
        case .string(let s): if let r = Units.parseRate(s), r > 0 { return r }
        default: break
        }
        throw fail(key, "a positive rate in bytes per second, or a string such as \"1MiB/s\"", v)
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
