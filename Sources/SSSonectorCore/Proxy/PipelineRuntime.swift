import Logging
import NIOCore

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

    init(config: PipelineConfig, upstreams: UpstreamTable, chain: StageChain, clock: any HostClock,
         registry: ConnectionRegistry, logger: Logger) {
        self.config = config
        self.upstreams = upstreams
        self.chain = chain
        self.clock = clock
        self.registry = registry
        self.logger = logger
    }

    public var name: String { config.name }
}
