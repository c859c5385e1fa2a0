import NIOCore
import NIOSSL
import NIOTLS

/// The channel handler on each side of a relayed connection (client and upstream), and that
/// side's `RelayEndpoint` for the session. It hands every event to the shared `ProxySession`
/// and holds back `read()` while the other side cannot take more bytes: the backpressure
/// pattern of swift-nio-examples' GlueHandler.
final class RelaySideHandler: ChannelDuplexHandler, RelayEndpoint {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: ProxySession?
    private let side: RelaySide
    /// Set from `handlerAdded` until the channel goes inactive (the context holds this handler).
    private var context: ChannelHandlerContext?
    /// A TLS handler sits before this one and its handshake has not completed: reads always
    /// pass (the TLS handler needs them), and the session starts (client side) or the attempt
    /// succeeds (upstream side) only once it completes.
    private var handshakePending: Bool
    /// The upstream attempt waiting for this side's TLS handshake.
    private var handshake: ChannelUpstreamAttempt?

    /// A client side; `awaitsHandshake` on a TLS listener.
    init(session: ProxySession, side: RelaySide, awaitsHandshake: Bool = false) {
        self.session = session
        self.side = side
        self.handshakePending = awaitsHandshake
    }

    /// An upstream side whose TLS handshake `handshake` waits for.
    init(session: ProxySession, side: RelaySide, handshake: ChannelUpstreamAttempt?) {
        self.session = session
        self.side = side
        self.handshake = handshake
        self.handshakePending = handshake != nil
    }

    /// The attempt is over (succeeded, failed or cancelled): later events go to the session.
    func handshakeEnded() { handshake = nil }

    /// The attempt this side belonged to failed or was abandoned: its channel's last events
    /// must not reach the session, which may be relaying over another upstream by then.
    func detachFromSession() {
        session = nil
        handshake = nil
    }

    // MARK: events, to the session

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if side == .client { session?.clientAttached(self) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .client && !handshakePending { session?.start(peerIdentity: nil) }
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
        } else if handshakePending, let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            handshakePending = false
            if side == .client {
                let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
                session?.start(peerIdentity: certificate.map(PeerIdentity.describe))
            } else {
                handshake?.handshakeCompleted()
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
        if let handshake, handshake.waitsForHandshake { return handshake.handshakeFailed(error) }
        session?.failed(side, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let handshake, handshake.waitsForHandshake {
            handshake.handshakeFailed(ChannelError.eof)
        } else {
            session?.inactive(side)
        }
        // Break the cycles: the session holds this handler, which holds it and the context.
        session = nil
        handshake = nil
        self.context = nil
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        guard let session, !handshakePending else { return context.read() }
        if session.mayRead(side) {
            context.read()
        } else {
            session.readSuppressed(side)
        }
    }

    // MARK: RelayEndpoint, from the session

    func write(_ chunk: ByteBuffer) {
        context?.write(NIOAny(chunk), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    /// An empty write's promise completes after every earlier write; only then is the output
    /// shut (shutting it with writes pending would drop them when the input is closed already).
    func shutdownOutputAfterWrites(_ done: @escaping (Error?) -> Void) {
        guard let context else { return done(ChannelError.ioOnClosedChannel) }
        let drained = context.eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound((context, done), eventLoop: context.eventLoop)
        drained.futureResult.whenComplete { result in
            let (context, done) = bound.value
            switch result {
            case .success:
                context.close(mode: .output, promise: nil)
                done(nil)
            case .failure(let error):
                done(error)
            }
        }
        context.writeAndFlush(NIOAny(ByteBuffer()), promise: drained)
    }

    func resumeReading() {
        context?.read()
    }

    func close() {
        context?.close(promise: nil)
    }

    func upstreamConnected() {
        context?.triggerUserOutboundEvent(TunnelUpstreamConnected(), promise: nil)
    }
}
