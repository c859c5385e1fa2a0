import ConfigValues
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import StageABI

/// The `sssonector` process: runs pipelines on one event loop per core, ticks stages on a
/// control thread, and drains gracefully on stop.
public final class Host: @unchecked Sendable {  // mutable state is touched on the caller's thread only
    public let threadCount: Int
    public let logger: Logger
    public let clock: any HostClock
    public let metrics = MetricsRegistry()
    let registry = ConnectionRegistry()
    let files: [String]
    /// Serializes stage creation (reload) with stage destruction (retirees): the ABI never
    /// runs create and destroy concurrently.
    let lifecycle = NSLock()
    private let group: MultiThreadedEventLoopGroup
    private let control = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// Guards the mutable state below: reloads come from the signal thread or the admin API.
    let lock = NSLock()
    var listeners: [PipelineListener] = []
    /// Repeated tasks (stage ticks, upstream cleanup) by runtime.
    var ticks: [ObjectIdentifier: [RepeatedTask]] = [:]
    /// Runtimes replaced by a reload, until their last connection closes and their stages are
    /// destroyed (`retire`).
    var retired: [PipelineRuntime] = []
    private var admin: AdminServer?
    let indexes: LoopIndexes
    /// Services of this host's relay files and the connectors registered for them.
    let relayHub = RelayHub()
    /// The tunnel listeners of the relay files.
    var relays: [RelayListener] = []
    /// The data path of pipelines that do not choose one (`--data-path`).
    let dataPath: DataPathChoice
    /// The epoll data path's loops, one per thread, started with its first pipeline. With `lock`.
    private var epollLoops: [EpollLoop] = []

    public init(files: [String], threads: Int? = nil, logger: Logger, clock: any HostClock = SystemClock(),
                dataPath: DataPathChoice = .hostDefault) {
        self.dataPath = dataPath
        self.files = files
        self.threadCount = max(1, threads ?? System.coreCount)
        self.logger = logger
        self.clock = clock
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threadCount)
        self.indexes = LoopIndexes(group)
    }

    /// Parses the files, loads every plugin and creates and destroys every stage, opening no
    /// socket. Returns one line per error (empty: valid).
    public static func validate(files: [String], threads: Int? = nil, logger: Logger, dataPath: DataPathChoice = .hostDefault) -> [String] {
        let registry = ConnectionRegistry()
        switch PipelineSet.assemble(files: files, threadCount: max(1, threads ?? System.coreCount),
                                    clock: SystemClock(), metrics: MetricsRegistry(), registry: registry,
                                    logger: logger, dataPath: dataPath) {
        case .success(let set):
            set.destroy()
            return []
        case .failure(let errors):
            return errors.lines
        }
    }

    /// Assembles the pipelines and binds their listeners (relays first). Returns each listener
    /// ("pipeline NAME", "relay NAME") with its bound address. Throws the error lines on invalid
    /// input (`HostError.invalid`) or a bind failure (`HostError.runtime`).
    public func start() throws(HostError) -> [(listener: String, address: String)] {
        let set: PipelineSet
        switch PipelineSet.assemble(files: files, threadCount: threadCount, clock: clock, metrics: metrics,
                                    registry: registry, logger: logger, relayHub: relayHub, dataPath: dataPath) {
        case .success(let assembled): set = assembled
        case .failure(let errors): throw .invalid(errors.lines)
        }
        var bound: [(String, String)] = []
        lock.lock()
        defer { lock.unlock() }
        relayHub.configure(set.relays.map(\.config))
        do {
            for relay in set.relays {
                let listener = try bindRelay(relay)
                bound.append(("relay \(relay.config.name)", listener.boundAddress.map(Self.describe) ?? relay.config.text))
            }
        } catch {
            stopRelays()
            set.destroy()
            throw error
        }
        for runtime in set.runtimes {
            do {
                let listener = try listen(runtime)
                bound.append(("pipeline \(runtime.name)", listener.boundAddress.map(Self.describe) ?? runtime.config.listen.text))
            } catch {
                stopListening()
                stopRelays()
                set.destroy()
                throw error
            }
        }
        return bound
    }

    /// Binds a relay file's tunnel listener. Call with `lock` held.
    func bindRelay(_ relay: (config: RelayConfig, context: NIOSSLContext)) throws(HostError) -> RelayListener {
        let listener: RelayListener
        do {
            listener = try RelayListener.bind(relay.config, context: relay.context, hub: relayHub, group: group, logger: logger).wait()
        } catch {
            throw .runtime(["\(relay.config.file): relay.address: cannot listen on \(relay.config.text): \(error)"])
        }
        relays.append(listener)
        logger.info("relay listening for connectors", metadata: [
            "relay": "\(relay.config.name)", "address": "\(listener.boundAddress.map(Self.describe) ?? relay.config.text)",
            "services": "\(relay.config.services.map(\.name).joined(separator: ","))",
        ])
        return listener
    }

    /// Closes every relay listener (registered connections stay until the loops stop). With `lock` held.
    func stopRelays() {
        for relay in relays { _ = try? relay.close().wait() }
        relays = []
    }

    /// Binds a listener for `runtime` and starts its ticks. Call with `lock` held.
    func listen(_ runtime: PipelineRuntime) throws(HostError) -> PipelineListener {
        startPools(runtime)
        let listener: PipelineListener
        do {
            if let connector = PipelineListener.connect(runtime, group: group, loopIndexes: indexes) {
                listener = connector
            } else if runtime.dataPath == .epoll {
                if epollLoops.isEmpty {
                    epollLoops = try (0..<threadCount).map { try EpollLoop(name: "sssonector-epoll-\($0)") }
                }
                listener = try PipelineListener.bindSockets(runtime, loops: epollLoops)
            } else {
                listener = try PipelineListener.bind(runtime, group: group, loopIndexes: indexes).wait()
            }
        } catch {
            runtime.pools.close(.shutdown)
            throw .runtime(["\(runtime.config.file): listen.address: cannot listen on \(runtime.config.listen.text): \(error)"])
        }
        listeners.append(listener)
        scheduleTicks(runtime)
        logger.info("pipeline listening", metadata: [
            "pipeline": "\(runtime.name)", "address": "\(listener.boundAddress.map(Self.describe) ?? runtime.config.listen.text)",
            "stages": "\(runtime.chain.stages.map(\.name).joined(separator: ","))",
            "upstreams": "\(runtime.config.upstreams.map(\.addressText).joined(separator: ","))",
        ])
        return listener
    }

    /// The running pipelines (for stats and the admin API).
    public var runtimes: [PipelineRuntime] {
        lock.lock()
        defer { lock.unlock() }
        return listeners.map(\.runtime)
    }

    /// Connector pipelines' connectors, by pipeline name (`/stats`, metrics).
    var connectors: [String: ReverseConnector] {
        lock.lock()
        defer { lock.unlock() }
        var found: [String: ReverseConnector] = [:]
        for listener in listeners { if let reverse = listener.reverse { found[listener.runtime.name] = reverse } }
        return found
    }

    /// Each pipeline's listener as `/stats` shows it ("listener"), by pipeline name.
    var listenerStatus: [String: ListenerStatus] {
        lock.lock()
        defer { lock.unlock() }
        var found: [String: ListenerStatus] = [:]
        for listener in listeners {
            let config = listener.runtime.config.listen
            found[listener.runtime.name] = ListenerStatus(
                address: listener.boundAddress.map(Self.describe) ?? config.text,
                kind: config.reverse != nil ? .reverse : config.tls != nil ? .tls : .tcp,
                active: listener.isActive)
        }
        return found
    }

    /// Whether any relay file is loaded (`/stats` then has "relay").
    var hasRelay: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !relays.isEmpty
    }

    /// Whether every pipeline is listening.
    public var isListening: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !listeners.isEmpty && listeners.allSatisfy(\.isActive)
    }

    /// Starts the admin API (docs/operations.md, "Admin API") on `address`; returns the bound address. A non-loopback
    /// address needs a token; every request must then carry it as a bearer token.
    public func startAdmin(address: EndpointAddress, token: String?) throws(HostError) -> String {
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(address.host)
        guard loopback || token != nil else {
            throw .invalid(["--admin \(address): a non-loopback admin address requires --admin-token"])
        }
        let router = AdminRouter(host: self, metrics: HostMetrics(registry: metrics.prometheus),
                                 control: control.next(), token: token)
        do {
            let server = try AdminServer.start(host: address.host, port: address.port, router: router, group: group)
            admin = server
            return server.channel.localAddress.map(Self.describe) ?? address.description
        } catch {
            throw .runtime(["--admin \(address): cannot listen: \(error)"])
        }
    }

    /// Starts a runtime's stage ticks and upstream cleanup on the control loop. With `lock` held.
    func scheduleTicks(_ runtime: PipelineRuntime) {
        let loop = control.next()
        var tasks: [RepeatedTask] = []
        for stage in runtime.chain.stages where stage.tickIntervalMilliseconds > 0 {
            let interval = TimeAmount.milliseconds(Int64(stage.tickIntervalMilliseconds))
            let clock = self.clock
            tasks.append(loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                stage.tick(now: clock.monotonicNanoseconds())
            })
        }
        let upstreams = runtime.upstreams
        tasks.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            upstreams.removeDrained()
        })
        ticks[ObjectIdentifier(runtime)] = tasks
    }

    /// Opens a runtime's warm pools on every loop (before it takes connections: `min_idle`
    /// connections open at start).
    func startPools(_ runtime: PipelineRuntime) {
        runtime.pools.start(runtime, loops: Array(group.makeIterator()))
    }

    /// Stops a runtime's ticks, closes its warm pools, and destroys its stages once its last
    /// connection has closed (at once when none is open). With `lock` held.
    func retire(_ runtime: PipelineRuntime) {
        ticks.removeValue(forKey: ObjectIdentifier(runtime))?.forEach { $0.cancel() }
        runtime.pools.close(.shutdown)
        retired.append(runtime)
        runtime.retire { [weak self] drained in
            // Never on the event loop of the last close: destruction may take a while (the
            // balancer joins its health-check thread) and is serialized with creation (reload).
            guard let host = self else { return }
            Host.lifecycleQueue.async { host.destroyRetired(drained) }
        }
    }

    private static let lifecycleQueue = DispatchQueue(label: "sssonector.lifecycle")

    /// Off the event loops: destroys a retired runtime whose last connection has closed.
    private func destroyRetired(_ runtime: PipelineRuntime) {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        lock.lock()
        retired.removeAll { $0 === runtime }
        lock.unlock()
        guard !runtime.isDestroyed else { return }
        runtime.destroyStages()
        logger.info("previous configuration of pipeline destroyed", metadata: ["pipeline": "\(runtime.name)"])
    }

    /// Graceful stop: stop accepting, let open connections finish for up to the longest
    /// `drain_timeout`, close the rest, destroy the stages, stop the loops. Waits on the last
    /// connection's close (no polling).
    public func shutdown() {
        admin?.close()
        admin = nil
        lock.lock()
        let current = listeners.map(\.runtime)
        stopListening()
        lock.unlock()
        current.forEach { $0.pools.close(.shutdown) }
        let drain = current.map(\.config.connection.drainTimeout).max() ?? 0
        if !waitUntilNoConnections(nanoseconds: drain) {
            logger.info("closing connections still open after the drain timeout", metadata: ["open": "\(registry.count)"])
            registry.closeAll(cause: SSS_CLOSE_SHUTDOWN)
            _ = waitUntilNoConnections(nanoseconds: 2_000_000_000)
        }
        lock.lock()
        stopRelays()
        ticks.values.forEach { $0.forEach { $0.cancel() } }
        ticks = [:]
        let everything = current + retired
        retired = []
        lock.unlock()
        try? control.syncShutdownGracefully()
        everything.forEach { $0.destroyStages() }
        try? group.syncShutdownGracefully()
        lock.lock()
        let loops = epollLoops
        epollLoops = []
        lock.unlock()
        for loop in loops { try? loop.syncShutdownGracefully() }
    }

    /// Blocks until every connection has closed or `nanoseconds` have passed; true when none is
    /// open.
    private func waitUntilNoConnections(nanoseconds: UInt64) -> Bool {
        let empty = DispatchSemaphore(value: 0)
        registry.whenEmpty { empty.signal() }
        return empty.wait(timeout: .now() + .nanoseconds(Int(Int64(saturatingNanoseconds: nanoseconds)))) == .success
    }

    /// Closes every listener. With `lock` held.
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
