import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// The relay's tunnel listener (a relay file's `relay.address`): accepts connectors over mutual
/// TLS 1.3, asks each connection which service it serves, checks the certificate's identity
/// against that service's `allow` list and registers the connection in the hub. Connections are
/// spread over the event loops, so a client on any loop usually finds one on its own.
final class RelayListener: Sendable {
    let config: RelayConfig
    let channel: Channel

    private init(config: RelayConfig, channel: Channel) {
        self.config = config
        self.channel = channel
    }

    var boundAddress: SocketAddress? { channel.localAddress }

    static func bind(_ config: RelayConfig, context: NIOSSLContext, hub: RelayHub, group: MultiThreadedEventLoopGroup,
                     logger: Logger) -> EventLoopFuture<RelayListener> {
        var relayLogger = logger
        relayLogger[metadataKey: "relay"] = "\(config.name)"
        let log = relayLogger
        return ServerBootstrap(group: group.next(), childGroup: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeVoidFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(RelayAdmission(hub: hub, logger: log))
                }
            }
            .bind(host: config.address.host, port: config.address.port)
            .map { RelayListener(config: config, channel: $0) }
    }

    func close() -> EventLoopFuture<Void> { channel.close().recover { _ in } }
}

/// One connector connection on the relay, from the TLS handshake to its registration: turns the
/// connection into an HTTP/2 client, sends the registration request, authorizes the answer.
private final class RelayAdmission: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let hub: RelayHub
    private var logger: Logger
    private var failed = false
    private var deadline: Scheduled<Void>?

    init(hub: RelayHub, logger: Logger) {
        self.hub = hub
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "connector"] = "\(context.channel.remoteAddress.map(Host.describe) ?? "?")"
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: TunnelProtocol.registrationTimeout) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !failed else { return }
        failed = true
        hub.figures.add(.handshakeFailures)
        logger.warning("connector refused: TLS handshake failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else {
            return context.fireUserInboundEventTriggered(event)
        }
        let channel = context.channel
        let names = (try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate).flatMap { $0 }
            .map(PeerIdentity.names) ?? []
        do {
            let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .client, connectionConfiguration: TunnelProtocol.connectionConfiguration,
                streamConfiguration: TunnelProtocol.streamConfiguration
            ) { pushed in
                pushed.close()  // a connector never opens streams
            }
            try channel.pipeline.syncOperations.addHandler(TunnelLiveness())
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            register(channel, multiplexer: multiplexer, names: names)
        } catch {
            logger.error("cannot set up the tunnel connection", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
        }
    }

    private func register(_ channel: Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, names: [String]) {
        let hub = self.hub
        let logger = self.logger
        let deadline = self.deadline
        let answer = channel.eventLoop.makePromise(of: String.self)
        multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(RegistrationRequest(answer: answer, relayName: "sssonector-relay"))
            }
        }.whenFailure { answer.fail($0) }
        answer.futureResult.whenComplete { result in
            deadline?.cancel()
            switch result {
            case .failure(let error):
                logger.warning("connector refused: no registration", metadata: ["error": "\(error)"])
                channel.close(promise: nil)
            case .success(let service):
                switch hub.authorize(names: names, service: service) {
                case .failure(let refusal):
                    logger.warning("connector refused", metadata: ["service": "\(service)", "reason": "\(refusal.message)"])
                    TunnelConnection.refuse(channel, refusal.message)
                case .success(let identity):
                    let address = channel.remoteAddress.map(Host.describe) ?? "?"
                    let connection = TunnelConnection(channel: channel, multiplexer: multiplexer, service: service,
                                                      identity: identity, address: address)
                    hub.register(connection)
                    // A stopping connector says so with a GOAWAY: no new streams its way.
                    (try? channel.pipeline.syncOperations.handler(type: TunnelLiveness.self))?.onGoAway = { _ in hub.unregister(connection) }
                    channel.closeFuture.whenComplete { _ in
                        hub.unregister(connection)
                        logger.info("connector gone", metadata: ["service": "\(service)", "identity": "\(identity)"])
                    }
                    logger.info("connector registered", metadata: ["service": "\(service)", "identity": "\(identity)"])
                }
            }
        }
    }
}

/// The registration stream, relay side: asks the connector which service it serves.
private final class RegistrationRequest: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let answer: EventLoopPromise<String>
    private let relayName: String
    private var done = false

    init(answer: EventLoopPromise<String>, relayName: String) {
        self.answer = answer
        self.relayName = relayName
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let request = HTTP2Frame.FramePayload.headers(.init(headers: TunnelProtocol.registrationRequest(relayName: relayName), endStream: true))
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done, case .headers(let frame) = unwrapInboundIn(data) else { return }
        done = true
        let status = frame.headers.first(name: ":status")
        if status == "200", let service = frame.headers.first(name: TunnelProtocol.serviceHeader) {
            answer.succeed(service)
        } else {
            answer.fail(TunnelStreamRefused(status: status ?? "none"))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            answer.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }
}
