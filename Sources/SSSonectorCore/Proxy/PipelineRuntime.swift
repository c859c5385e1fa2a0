import Logging
import NIOCore
import Synchronization

/// A running pipeline: its validated config, live upstream table, stage chain and counters.
/// Shared by every connection of the pipeline (thread-safe).
public final class PipelineRuntime: Sendable {
    public let config: PipelineConfig
    public let upstreams: UpstreamTable
    public let chain: StageChain
    public let counters = PipelineCounters()
    public let clock: any HostClock
    let registry: ConnectionRegistry
    let logger: Logger
    /// Parsed upstream addresses by upstream id (addresses never change for an id).
    private let targets = Mutex<[UInt64: UpstreamTarget]>([:])

    /// TLS contexts of the listener and the upstreams.
    let tls: PipelineTLS

    init(config: PipelineConfig, upstreams: UpstreamTable, chain: StageChain, clock: any HostClock,
         registry: ConnectionRegistry, logger: Logger, tls: PipelineTLS = PipelineTLS()) {
        self.tls = tls
        self.config = config
        self.upstreams = upstreams
        self.chain = chain
        self.clock = clock
        self.registry = registry
        self.logger = logger
    }

    public var name: String { config.name }

    /// Where to connect for upstream `entry`, parsed on first use.
    func target(for entry: UpstreamEntry) -> UpstreamTarget {
        targets.withLock { cache in
            if let known = cache[entry.id] { return known }
            let parsed = UpstreamConnector.target(for: entry.address)
            cache[entry.id] = parsed
            return parsed
        }
    }
}
