import Glibc

/// A `host:port` address as pipeline files write them: `127.0.0.1:7000`, `[::1]:7000` or
/// `example.com:443`.
public struct EndpointAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; `allowPortZero` for listeners (0 = any free port). Strict: the port is
    /// 1 to 5 digits; a host of digits and dots is a dotted-quad IPv4 address with each part
    /// 0...255; a bracketed host is an IPv6 address (`inet_pton`, an optional `%zone`); a name
    /// follows RFC 1123 (labels of 1...63 letters, digits and inner hyphens, 253 in all).
    public static func parse(_ text: String, allowPortZero: Bool) -> Result<EndpointAddress, AddressError> {
        let shown = text.quotedForMessage()
        let expected = "expected \"host:port\", \"[IPv6]:port\" or \"name:port\""
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text[text.index(after: close)...].hasPrefix(":")
            else { return .failure(AddressError("\(expected), found \(shown)")) }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard host.contains(":") else { return .failure(AddressError("brackets are for IPv6 addresses, found \(shown)")) }
            guard isIPv6(host) else { return .failure(AddressError("not an IPv6 address: \(String(host).quotedForMessage())")) }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(AddressError("\(expected), found \(shown)")) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(AddressError("write IPv6 addresses in brackets, e.g. \"[::1]:7000\", found \(shown)")) }
            if let problem = hostProblem(host) { return .failure(AddressError("\(problem), found \(shown)")) }
        }
        guard (1...5).contains(portText.utf8.count), portText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let port = Int(portText), port >= (allowPortZero ? 0 : 1), port <= 65535
        else {
            return .failure(AddressError("port must be \(allowPortZero ? 0 : 1)...65535, found \(shown)"))
        }
        return .success(EndpointAddress(host: String(host), port: port))
    }

    /// Why `host` (not bracketed) is neither an IPv4 address nor a host name; nil when it is one.
    private static func hostProblem(_ host: Substring) -> String? {
        let expected = "expected \"host:port\", \"[IPv6]:port\" or \"name:port\""
        guard !host.isEmpty else { return expected }
        if host.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 }) {
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            let valid = parts.count == 4 && parts.allSatisfy { $0.count >= 1 && $0.count <= 3 && (Int($0) ?? 256) <= 255 }
            return valid ? nil : "not an IPv4 address (four parts of 0...255)"
        }
        guard host.utf8.count <= 253 else { return "a host name has at most 253 characters" }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        for (k, label) in labels.enumerated() {
            // One trailing dot (a fully qualified name) is allowed.
            if label.isEmpty && k == labels.count - 1 && k > 0 { continue }
            let bytes = label.utf8
            guard (1...63).contains(bytes.count),
                  bytes.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 45 || $0 == 95 }),
                  bytes.first != 45, bytes.last != 45
            else { return "not a host name (labels of 1...63 letters, digits and inner hyphens)" }
        }
        return nil
    }

    private static func isIPv6(_ host: Substring) -> Bool {
        let address = host.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
        if address.count == 2 && address[1].isEmpty { return false }
        var storage = in6_addr()
        return inet_pton(AF_INET6, String(address[0]), &storage) == 1
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why an address string is not usable.
public struct AddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
