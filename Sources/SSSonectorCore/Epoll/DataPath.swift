import ConfigValues
import NIOCore

/// Which code moves a pipeline's bytes (docs/architecture.md, "Two data paths"): SwiftNIO
/// channels, or the relay's own epoll loops for plain TCP on both sides. One relay semantics
/// (`ProxySession`, the same chain and stages) either way.
public enum DataPath: String, Sendable {
    case nio, epoll
}

/// What a pipeline (`connection.data_path`) or the command line (`--data-path`) asks for.
public enum DataPathChoice: String, Sendable, CaseIterable {
    /// What a host runs pipelines that do not choose on, unless `--data-path` says otherwise:
    /// the faster path wherever the pipeline allows it (benchmarks/README.md, "The epoll data
    /// path"); both pass the same end-to-end suites (docs/testing.md, "Both data paths").
    public static let hostDefault = DataPathChoice.auto

    /// epoll where the pipeline allows it, else SwiftNIO.
    case auto
    case nio
    /// epoll, and an error for a pipeline that does not allow it.
    case epoll

    /// The path `config` runs on when this is asked for. Throws, naming the JSON path, when
    /// epoll is asked for and the pipeline needs SwiftNIO.
    func resolve(for config: PipelineConfig) throws(ConfigError) -> DataPath {
        switch self {
        case .nio: return .nio
        case .auto: return config.needsSwiftNIO == nil ? .epoll : .nio
        case .epoll:
            guard let (path, why) = config.needsSwiftNIO else { return .epoll }
            throw ConfigError(path: path, "\(why): the epoll data path carries plain TCP only (set connection.data_path to \"auto\" or \"nio\")")
        }
    }
}

extension PipelineConfig {
    /// What keeps this pipeline on SwiftNIO, as (JSON path, reason); nil when the epoll path
    /// can carry it: a plain TCP listener, plain upstreams at IP addresses, no warm pool. TLS,
    /// the reverse tunnel, name resolution and the pool live on SwiftNIO channels.
    var needsSwiftNIO: (String, String)? {
        if listen.tls != nil { return ("listen.tls", "the listener terminates TLS") }
        if listen.reverse == nil && !listen.address.isIPLiteral { return ("listen.address", "the listener is a host name") }
        if listen.reverse != nil { return ("listen.reverse", "the pipeline is a reverse-tunnel connector") }
        if connection.pool.enabled { return ("connection.pool", "the warm pool is enabled") }
        for (i, upstream) in upstreams.enumerated() {
            if upstream.tls != nil { return ("upstreams[\(i)].tls", "upstream \(upstream.name) is TLS") }
            if upstream.reverseService != nil { return ("upstreams[\(i)].reverse", "upstream \(upstream.name) is a reverse-tunnel service") }
            if upstream.pool.enabled { return ("upstreams[\(i)].pool", "upstream \(upstream.name) has a warm pool") }
            if !upstream.address.isIPLiteral { return ("upstreams[\(i)].address", "upstream \(upstream.name) is a host name") }
        }
        return nil
    }
}

extension EndpointAddress {
    /// An IPv4 or IPv6 address, not a name to resolve.
    var isIPLiteral: Bool { (try? SocketAddress(ipAddress: host, port: port)) != nil }
}
