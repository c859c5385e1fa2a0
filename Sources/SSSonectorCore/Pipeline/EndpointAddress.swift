/// A `host:port` address as pipeline files write them: `127.0.0.1:7000`, `[::1]:7000` or
/// `example.com:443`.
public struct EndpointAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; `allowPortZero` for listeners (0 = any free port).
    public static func parse(_ text: String, allowPortZero: Bool) -> Result<EndpointAddress, AddressError> {
        let expected = "expected \"host:port\", \"[IPv6]:port\" or \"name:port\""
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text[text.index(after: close)...].hasPrefix(":")
            else { return .failure(AddressError("\(expected), found \"\(text)\"")) }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard host.contains(":") else { return .failure(AddressError("brackets are for IPv6 addresses, found \"\(text)\"")) }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(AddressError("\(expected), found \"\(text)\"")) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(AddressError("write IPv6 addresses in brackets, e.g. \"[::1]:7000\", found \"\(text)\"")) }
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || "-._:%".contains($0) }) else {
            return .failure(AddressError("\(expected), found \"\(text)\""))
        }
        guard let port = Int(portText), port >= (allowPortZero ? 0 : 1), port <= 65535 else {
            return .failure(AddressError("port must be \(allowPortZero ? 0 : 1)...65535, found \"\(text)\""))
        }
        return .success(EndpointAddress(host: String(host), port: port))
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why an address string is not usable.
public struct AddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
