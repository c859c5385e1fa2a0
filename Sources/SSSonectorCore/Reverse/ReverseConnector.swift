import Locking
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// A connector pipeline's "listener" (`listen.reverse`, docs/reverse-tunnel.md): keeps
/// `connections` mutually authenticated TLS 1.3 connections open to the relay, each an HTTP/2
/// server, answers the relay's registration with the service name, and admits every CONNECT
/// stream the relay opens as a connection of the pipeline (its stages, its upstreams). Lost
/// connections are dialed again with `ReconnectBackoff`; stopping ends the redialing and
/// answers new streams `503` so the relay sends them elsewhere.
final class ReverseConnector: Sendable {
    let settings: ReverseListenConfig
    let figures = FigureValues<ConnectorFigure>()
    private let slot: RuntimeSlot
    private let tls: PipelineTLS.UpstreamTLS
    private let loopIndexes: LoopIndexes
    private let idleTimers: [ObjectIdentifier: LoopIdleTimers]
    private let lines: [ConnectorLine]
    private let stopped = Atomic<Bool>(false)
    let logger: Logger

    init(slot: RuntimeSlot, settings: ReverseListenConfig, tls: PipelineTLS.UpstreamTLS, group: MultiThreadedEventLoopGroup,
         loopIndexes: LoopIndexes, logger: Logger) {
        self.slot = slot
        self.settings = settings
        self.tls = tls
        self.loopIndexes = loopIndexes
        self.logger = logger
        let loops = Array(group.makeIterator())
        var timers: [ObjectIdentifier: LoopIdleTimers] = [:]
        for loop in loops { timers[ObjectIdentifier(loop)] = LoopIdleTimers(loop: loop, clock: slot.runtime.clock) }
        idleTimers = timers
        lines = (0..<settings.connections).map { ConnectorLine(index: $0, loop: loops[$0 % loops.count]) }
    }

    var isRunning: Bool { !stopped.load(ordering: .relaxed) }

    /// The loop of the first connection (for futures about the connector as a whole).
    var loop: EventLoop { lines[0].loop }

    /// Dials every connection (each on its own loop, round robin).
    func start() {
        for line in lines {
            line.loop.execute { self.dial(line) }
        }
    }

    /// Stops redialing and tells the relay (GOAWAY: it sends no more streams this way; a stream
    /// already on its way is answered `503`). Open connections stay for the streams they carry
    /// and close after `drain` (the pipeline's `drain_timeout`).
    func stop(drain: UInt64) {
        stopped.store(true, ordering: .relaxed)
        for line in lines {
            line.loop.execute {
                guard let channel = line.channel else { return }
                let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError,
                                                                                opaqueData: ByteBuffer(string: "connector stopping")))
                channel.writeAndFlush(goAway, promise: nil)
                line.loop.scheduleTask(in: .nanoseconds(Int64(clamping: drain))) { channel.close(promise: nil) }
            }
        }
    }

    // MARK: one connection's life

    private func dial(_ line: ConnectorLine) {
        guard isRunning else { return }
        let relay = settings.relay
        ClientBootstrap(group: line.loop)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: self.tls.context, serverHostname: self.tls.serverName))
                    try channel.pipeline.syncOperations.addHandler(ConnectorHandshake(connector: self, line: line))
                }
            }
            .connect(host: relay.host, port: relay.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    line.channel = channel
                    channel.closeFuture.whenComplete { _ in
                        line.channel = nil
                        self.lost(line)
                    }
                case .failure(let error):
                    self.logger.warning("cannot reach the relay", metadata: ["relay": "\(relay)", "error": "\(error)"])
                    self.lost(line)
                }
            }
    }

    /// A connection closed or never opened: dial again after the backoff.
    private func lost(_ line: ConnectorLine) {
        line.loop.assertInEventLoop()
        if line.registered {
            line.registered = false
            figures.subtract(.connected)
        }
        guard isRunning else { return }
        let refused = line.refusedNow
        line.refusedNow = false
        let delay = line.backoff.nextDelay(refused: refused, now: clock.monotonicNanoseconds(), random: Double.random(in: 0..<1))
        figures.add(.reconnects)
        line.loop.scheduleTask(in: .nanoseconds(Int64(clamping: delay))) { self.dial(line) }
    }

    private var clock: any HostClock { slot.runtime.clock }

    /// The relay refused this connection (TLS, or GOAWAY with a reason): back off long.
    fileprivate func refused(_ line: ConnectorLine, _ why: String) {
        line.loop.assertInEventLoop()
        guard !line.refusedNow else { return }
        line.refusedNow = true
        figures.add(.refusals)
        logger.error("the relay refused this connector", metadata: [
            "relay": "\(settings.relay)", "service": "\(settings.service)", "reason": "\(why)",
        ])
    }

    /// The relay asked which service this connection serves: it is registered from now on,
    /// unless the relay answers with a GOAWAY.
    fileprivate func registered(_ line: ConnectorLine) {
        guard !line.registered else { return }
        line.registered = true
        line.backoff.connected(now: clock.monotonicNanoseconds())
        figures.add(.connected)
        figures.add(.connects)
        logger.info("connector registered with the relay", metadata: ["relay": "\(settings.relay)", "service": "\(settings.service)"])
    }

    /// A stream's request arrived: the registration, or a client connection for our service.
    fileprivate func request(_ context: ChannelHandlerContext, _ headers: HPACKHeaders, line: ConnectorLine) {
        let method = headers.first(name: ":method")
        func answer(_ status: String, _ extra: [(String, String)] = []) {
            let reply = HPACKHeaders([(":status", status)] + extra)
            context.writeAndFlush(NIOAny(HTTP2Frame.FramePayload.headers(.init(headers: reply, endStream: true))), promise: nil)
        }
        if method == "GET", headers.first(name: ":path") == TunnelProtocol.registerPath {
            answer("200", [(TunnelProtocol.serviceHeader, settings.service)])
            registered(line)
            return
        }
        guard method == "CONNECT", headers.first(name: ":authority") == settings.service else {
            logger.warning("the relay asked for something this connector does not serve", metadata: [
                "method": "\(method ?? "none")", "authority": "\(headers.first(name: ":authority") ?? "none")",
            ])
            return answer("404")
        }
        guard isRunning else { return answer("503") }
        figures.add(.streams)
        let channel = context.channel
        let peer = headers.first(name: TunnelProtocol.clientHeader).flatMap(Self.parseAddress) ?? channel.remoteAddress
        guard let timers = idleTimers[ObjectIdentifier(channel.eventLoop)] else { return answer("503") }
        do {
            try PipelineListener.admit(channel, runtime: slot.enterRuntime(), gate: slot.gate, idleTimers: timers,
                                       loopIndexes: loopIndexes, peer: peer, tunnelStream: true)
        } catch {
            logger.debug("cannot admit a tunnel stream", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
        }
    }

    /// `ip:port` or `[ip]:port` as the relay writes `sssonector-client`.
    static func parseAddress(_ text: String) -> SocketAddress? {
        guard case .success(let endpoint) = EndpointAddress.parse(text, allowPortZero: true) else { return nil }
        return try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port)
    }

    fileprivate func makeStreamCodec(_ line: ConnectorLine) -> TunnelStreamCodec {
        let bound = NIOLoopBound(line, eventLoop: line.loop)
        return TunnelStreamCodec(.acceptor(onRequest: { [self] context, headers in request(context, headers, line: bound.value) }))
    }
}

/// One of a connector's connections to the relay: its loop and its backoff. Confined to `loop`.
private final class ConnectorLine: @unchecked Sendable {
    let index: Int
    let loop: EventLoop
    var backoff = ReconnectBackoff()
    var registered = false
    /// The open connection, if any.
    var channel: Channel?
    /// The current attempt ended in a refusal (a long backoff follows).
    var refusedNow = false

    init(index: Int, loop: EventLoop) {
        self.index = index
        self.loop = loop
    }
}

/// Connector side, after TCP connects: waits for the TLS handshake, then makes the connection
/// an HTTP/2 server whose streams the connector admits. A failed handshake is a refusal.
private final class ConnectorHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let connector: ReverseConnector
    private let line: ConnectorLine

    init(connector: ReverseConnector, line: ConnectorLine) {
        self.connector = connector
        self.line = line
    }

    /// A TLS error: the relay refused our certificate, or we refused its.
    static func isTLSFailure(_ error: Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if Self.isTLSFailure(error) {
            connector.refused(line, "TLS handshake failed: \(error)")
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else {
            return context.fireUserInboundEventTriggered(event)
        }
        let channel = context.channel
        let connector = self.connector
        let line = self.line
        do {
            _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .server, connectionConfiguration: TunnelProtocol.connectionConfiguration,
                streamConfiguration: TunnelProtocol.streamConfiguration
            ) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(connector.makeStreamCodec(line))
                }
            }
            let bound = NIOLoopBound(line, eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandler(TunnelLiveness(
                onGoAway: { reason in if !reason.isEmpty { connector.refused(bound.value, reason) } },
                onError: { error in
                    if ConnectorHandshake.isTLSFailure(error), !bound.value.registered {
                        connector.refused(bound.value, "TLS: \(error)")
                    }
                }))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            connector.logger.error("cannot set up the tunnel connection", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
        }
    }
}
