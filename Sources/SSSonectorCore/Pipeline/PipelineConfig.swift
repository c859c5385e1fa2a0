import ConfigValues

/// One pipeline file (docs/pipeline-reference.md): a listener, its upstreams, connection settings and the ordered
/// stages. Built by `PipelineDecoder`; every value here has been validated.
public struct PipelineConfig: Sendable {
    public var file: String
    public var name: String
    public var listen: ListenConfig
    public var upstreams: [UpstreamConfig]
    public var connection: ConnectionSettings
    public var stages: [StageConfig]
    /// `plugin_path` entries (relative to the file).
    public var pluginPath: [String]

    /// The folder of the file: the base for relative plugin and certificate paths.
    public var directory: String { Self.directory(of: file) }

    static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }
}

public struct ListenConfig: Sendable {
    /// The address to bind; for a connector (`reverse`), the relay's address.
    public var address: EndpointAddress
    /// The text as written (what stages see as `listener`): `reverse:SERVICE@RELAY` for a connector.
    public var text: String
    /// TLS termination, when `listen.tls` is set.
    public var tls: ServerTLSSettings?
    /// `listen.reverse`: the pipeline is a connector that dials out to a relay.
    public var reverse: ReverseListenConfig?
}

public struct UpstreamConfig: Sendable {
    public var name: String
    public var address: EndpointAddress
    public var weight: UInt32
    /// TLS origination, when `upstreams[i].tls` is set.
    public var tls: ClientTLSSettings?
    /// The warm pool: `connection.pool` with this upstream's `pool` overrides applied.
    public var pool = PoolSettings()
    /// `reverse.service`: the upstream is a service reached through connectors of this host's
    /// relay; `address` is then `reverse:SERVICE`.
    public var reverseService: String?

    /// The address as `/stats` and the upstream table show it: `host:port`, or `reverse:SERVICE`.
    public var addressText: String { reverseService.map { Self.reversePrefix + $0 } ?? address.description }

    /// How a reverse upstream's address is written (`/stats`, the admin API): `reverse:SERVICE`.
    public static let reversePrefix = "reverse:"
}

/// `connection`: limits and timeouts for every connection of the pipeline.
public struct ConnectionSettings: Sendable, Equatable {
    public var maxConnections = 10_000
    public var keepAlive = true
    public var keepAliveIdle: UInt64 = 30_000_000_000
    /// Retries after the first failed attempt (the default policy when no stage decides).
    public var retryAttempts = 2
    public var retryInterval: UInt64 = 1_000_000_000
    public var connectTimeout: UInt64 = 5_000_000_000
    /// `open_timeout`: bounds the open phase (stages' verdicts, pending ones included); a
    /// pending stage's fallback applies when it passes.
    public var openTimeout: UInt64 = 1_000_000_000
    public var idleTimeout: UInt64 = 300_000_000_000
    /// How long a graceful stop waits for open connections before closing them.
    public var drainTimeout: UInt64 = 30_000_000_000
    /// Bytes the relay holds per direction before it stops reading (backpressure).
    public var bufferLimit: UInt64 = 256 * 1024
    /// `connection.pool`: the warm pool's defaults for every upstream (off unless enabled).
    public var pool = PoolSettings()
    /// `connection.data_path`: which code moves the bytes; nil: the host's `--data-path`.
    public var dataPath: DataPathChoice?

    public init() {}

    /// Upper bounds checked at validate time (every other duration: `Units.maximumDuration`).
    /// A connect (with its TLS handshake) that may wait longer is a lock-out waiting to happen.
    public static let maximumConnectTimeout: UInt64 = 600_000_000_000
    public static let maximumRetryInterval: UInt64 = 3_600_000_000_000
    /// A client held without a verdict longer than this is a lock-out, as for connects.
    public static let maximumOpenTimeout: UInt64 = 600_000_000_000
    /// Per direction and connection: above this one connection could hold the host's memory.
    public static let maximumBufferLimit: UInt64 = 1 << 30
}

/// One entry of `stages`.
public struct StageConfig: Sendable {
    public var name: String
    public var plugin: String
    public var type: String?
    /// The stage's `config` as JSON text (`{}` when absent).
    public var configJSON: String
    /// The JSON path of this entry: `stages[2]`.
    public var path: String
}
