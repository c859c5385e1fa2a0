import Foundation
import Logging
import NIOCore
import NIOPosix
import StageABI

/// The `sssonector` process: runs pipelines on one event loop per core, ticks stages on a
/// control thread, and drains gracefully on stop.
public final class Host: @unchecked Sendable {  // mutable state is touched on the caller's thread only
    public let threadCount: Int
    public let logger: Logger
    public let clock: any HostClock
    public let metrics = MetricsRegistry()
    let registry = ConnectionRegistry()
    private let files: [String]
    private let group: MultiThreadedEventLoopGroup
    private let control = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var pipelines: PipelineSet?
    private var listeners: [PipelineListener] = []
    private var ticks: [RepeatedTask] = []
    private var admin: AdminServer?

    public init(files: [String], threads: Int? = nil, logger: Logger, clock: any HostClock = SystemClock()) {
        self.files = files
        self.threadCount = max(1, threads ?? System.coreCount)
        self.logger = logger
        self.clock = clock
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threadCount)
    }

    /// Parses the files, loads every plugin and creates and destroys every stage, opening no
    /// socket. Returns one line per error (empty: valid).
    public static func validate(files: [String], threads: Int? = nil, logger: Logger) -> [String] {
        let registry = ConnectionRegistry()
        switch PipelineSet.assemble(files: files, threadCount: max(1, threads ?? System.coreCount),
                                    clock: SystemClock(), metrics: MetricsRegistry(), registry: registry,
                                    logger: logger) {
        case .success(let set):
            set.destroy()
            return []
        case .failure(let errors):
            return errors.lines
        }
    }

    /// Assembles the pipelines and binds their listeners. Throws the error lines on invalid
    /// input (`HostError.invalid`) or a bind failure (`HostError.runtime`).
    public func start() throws(HostError) -> [(pipeline: String, address: String)] {
        let set: PipelineSet
        switch PipelineSet.assemble(files: files, threadCount: threadCount, clock: clock, metrics: metrics,
                                    registry: registry, logger: logger) {
        case .success(let assembled): set = assembled
        case .failure(let errors): throw .invalid(errors.lines)
        }
        pipelines = set
        let indexes = LoopIndexes(group)
        var bound: [(String, String)] = []
        for runtime in set.runtimes {
            do {
                let listener = try PipelineListener.bind(runtime, group: group, loopIndexes: indexes).wait()
                listeners.append(listener)
                let address = listener.boundAddress.map(Self.describe) ?? runtime.config.listen.text
                bound.append((runtime.name, address))
                logger.info("pipeline listening", metadata: [
                    "pipeline": "\(runtime.name)", "address": "\(address)",
                    "stages": "\(runtime.chain.stages.map(\.name).joined(separator: ","))",
                    "upstreams": "\(runtime.config.upstreams.map(\.address.description).joined(separator: ","))",
                ])
            } catch {
                stopListening()
                set.destroy()
                throw .runtime(["\(runtime.config.file): listen.address: cannot listen on \(runtime.config.listen.text): \(error)"])
            }
        }
        scheduleTicks(set)
        return bound
    }

    /// The running pipelines (for stats and the admin API).
    public var runtimes: [PipelineRuntime] { pipelines?.runtimes ?? [] }

    /// Whether every pipeline is listening.
    public var isListening: Bool { !listeners.isEmpty && listeners.allSatisfy { $0.channel.isActive } }

    /// Starts the admin API (SPEC §7) on `address`; returns the bound address. A non-loopback
    /// address needs a token; every request must then carry it as a bearer token.
    public func startAdmin(address: EndpointAddress, token: String?) throws(HostError) -> String {
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(address.host)
        guard loopback || token != nil else {
            throw .invalid(["--admin \(address): a non-loopback admin address requires --admin-token"])
        }
        let router = AdminRouter(host: self, metrics: HostMetrics(registry: metrics.prometheus, runtimes: runtimes),
                                 control: control.next(), token: token)
        do {
            let server = try AdminServer.start(host: address.host, port: address.port, router: router, group: group)
            admin = server
            return server.channel.localAddress.map(Self.describe) ?? address.description
        } catch {
            throw .runtime(["--admin \(address): cannot listen: \(error)"])
        }
    }

    private func scheduleTicks(_ set: PipelineSet) {
        let loop = control.next()
        for runtime in set.runtimes {
            for stage in runtime.chain.stages where stage.tickIntervalMilliseconds > 0 {
                let interval = TimeAmount.milliseconds(Int64(stage.tickIntervalMilliseconds))
                let clock = self.clock
                ticks.append(loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                    stage.tick(now: clock.monotonicNanoseconds())
                })
            }
            let upstreams = runtime.upstreams
            ticks.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                upstreams.removeDrained()
            })
        }
    }

    /// Graceful stop: stop accepting, let open connections finish for up to the longest
    /// `drain_timeout`, close the rest, destroy the stages, stop the loops.
    public func shutdown() {
        admin?.close()
        admin = nil
        stopListening()
        let drain = runtimes.map(\.config.connection.drainTimeout).max() ?? 0
        let deadline = clock.monotonicNanoseconds() &+ drain
        while registry.count > 0 && clock.monotonicNanoseconds() < deadline {
            usleep(20_000)
        }
        if registry.count > 0 {
            logger.info("closing connections still open after the drain timeout", metadata: ["open": "\(registry.count)"])
            registry.closeAll(cause: SSS_CLOSE_SHUTDOWN)
            let hardDeadline = clock.monotonicNanoseconds() &+ 2_000_000_000
            while registry.count > 0 && clock.monotonicNanoseconds() < hardDeadline { usleep(5_000) }
        }
        ticks.forEach { $0.cancel() }
        ticks = []
        try? control.syncShutdownGracefully()
        pipelines?.destroy()
        pipelines = nil
        try? group.syncShutdownGracefully()
    }

    private func stopListening() {
        for listener in listeners { _ = try? listener.close().wait() }
        listeners = []
    }

    static func describe(_ address: SocketAddress) -> String {
        let ip = address.ipAddress ?? "?"
        let port = address.port ?? 0
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// Why the host could not start.
public enum HostError: Error {
    /// Invalid input (exit 2): one line per problem.
    case invalid([String])
    /// A run-time failure (exit 1), such as a port already in use.
    case runtime([String])

    public var lines: [String] {
        switch self {
        case .invalid(let l), .runtime(let l): l
        }
    }
}
