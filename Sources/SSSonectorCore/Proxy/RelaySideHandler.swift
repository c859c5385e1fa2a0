import NIOCore
import NIOSSL
import NIOTLS

/// The channel handler on each side of a relayed connection (client and upstream). It hands
/// every event to the shared `ProxySession` and holds back `read()` while the other side cannot
/// take more bytes: the backpressure pattern of swift-nio-examples' GlueHandler.
final class RelaySideHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: ProxySession?
    private let side: ProxySession.Side
    /// A TLS handler sits before this one: the session starts (client side) or the connect
    /// counts as done (upstream side) only once the handshake has completed.
    private let awaitsHandshake: Bool
    /// Until the handshake completes, reads always pass: the TLS handler needs them.
    private var handshakeDone = false

    init(session: ProxySession, side: ProxySession.Side, awaitsHandshake: Bool = false) {
        self.session = session
        self.side = side
        self.awaitsHandshake = awaitsHandshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        session?.attached(side, context)
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .client && !awaitsHandshake { session?.start(peerIdentity: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        session?.read(side, unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        session?.readComplete(side)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            session?.inputClosed(side)
        } else if awaitsHandshake, let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            handshakeDone = true
            if side == .client {
                let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
                session?.start(peerIdentity: certificate.map(PeerIdentity.describe))
            } else {
                session?.upstreamHandshakeCompleted()
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        session?.writabilityChanged(side, writable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        session?.failed(side, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session?.inactive(side)
        session = nil  // break the cycle: the session holds our context
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        guard let session, !awaitsHandshake || handshakeDone else { return context.read() }
        if session.mayRead(side) {
            context.read()
        } else {
            session.readSuppressed(side)
        }
    }
}
