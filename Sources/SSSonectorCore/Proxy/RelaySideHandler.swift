import Glibc
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
    /// The channel is a plain TCP socket (no TLS handler before this one): bytes may go
    /// straight to its descriptor (see `write`).
    private let plainSocket: Bool
    /// The socket's descriptor while bytes may be sent on it directly, until the channel
    /// closes (NIO closes the descriptor only on the way to `channelInactive`, where this is
    /// cleared, or after our own `close`). -1: never (not a plain socket, or closed);
    /// `unresolved`: not looked up yet. The look-up is a dynamic cast of about 10,000
    /// instructions, so it waits for the second write: a connection that carries one
    /// exchange does not pay for it.
    private var directSocket: CInt
    private static let unresolved: CInt = -2
    private var wroteBefore = false
    /// Writes handed to NIO that have not completed: while any is queued, later bytes queue
    /// behind it, in order.
    private var writesInNIO = 0
    /// Bytes were handed to NIO since the last flush.
    private var unflushedInNIO = false

    /// A client side (`awaitsHandshake` on a TLS listener), or a warm pool's upstream channel.
    /// `plainSocket`: a TCP socket channel with no TLS handler.
    init(session: ProxySession, side: RelaySide, plainSocket: Bool, awaitsHandshake: Bool = false) {
        self.session = session
        self.side = side
        self.plainSocket = plainSocket
        self.directSocket = plainSocket ? Self.unresolved : -1
        self.handshakePending = awaitsHandshake
    }

    /// An upstream side whose TLS handshake `handshake` waits for (nil: a plain upstream).
    init(session: ProxySession, side: RelaySide, plainSocket: Bool, handshake: ChannelUpstreamAttempt?) {
        self.session = session
        self.side = side
        self.plainSocket = plainSocket
        self.directSocket = plainSocket ? Self.unresolved : -1
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
        directSocket = -1  // NIO is closing the descriptor
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

    /// On a plain socket with nothing queued in NIO, the bytes go to the kernel at once with
    /// one `send`, past NIO's outbound pipeline and write queue (a third of the user-space
    /// instructions of a relayed request, benchmarks/README.md). What the kernel does not take
    /// (a full socket buffer, an error) goes to NIO, which queues it, watches for writability,
    /// reports backpressure and errors as always; later bytes queue behind it until it is out.
    /// NIO has no API for this: it can lend a channel's descriptor, not send on the caller's
    /// behalf without its pipeline.
    func write(_ chunk: ByteBuffer) {
        if directSocket == Self.unresolved {
            guard wroteBefore else {
                wroteBefore = true
                return writeThroughNIO(chunk)
            }
            directSocket = lookUpSocket()
        }
        guard directSocket >= 0, writesInNIO == 0 else { return writeThroughNIO(chunk) }
        let count = chunk.readableBytes
        let sent = chunk.withUnsafeReadableBytes { Glibc.send(directSocket, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }
        if sent == count { return }
        var rest = chunk
        if sent > 0 { rest.moveReaderIndex(forwardBy: sent) }
        writeThroughNIO(rest)
        flush()
    }

    /// The channel's descriptor; -1 for a channel without one (a tunnel stream).
    private func lookUpSocket() -> CInt {
        guard let context else { return -1 }
        let socket = try? context.pipeline.syncOperations.withUnsafeTransportIfAvailable(of: NIOBSDSocket.Handle.self) { $0 }
        return socket.flatMap { $0 } ?? -1
    }

    private func writeThroughNIO(_ chunk: ByteBuffer) {
        guard let context else { return }
        unflushedInNIO = true
        guard directSocket != -1 else { return context.write(NIOAny(chunk), promise: nil) }
        // Counted until written, so direct sends start (or resume) only once NIO's queue is
        // empty. Only these writes carry a promise: a plain socket's first write, and what
        // the kernel did not take at once.
        writesInNIO += 1
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in writesInNIO -= 1 }
        context.write(NIOAny(chunk), promise: written)
    }

    func flush() {
        guard unflushedInNIO else { return }
        unflushedInNIO = false
        context?.flush()
    }

    /// An empty write's promise completes after every earlier write; only then is the output
    /// shut (shutting it with writes pending would drop them when the input is closed already).
    /// On a plain socket whose writes NIO has all written (or never had), every byte is with
    /// the kernel already, so the output is shut at once: 14,000 instructions fewer per
    /// connection than the empty write and its promise (benchmarks/README.md).
    /// The output is shut even with `thenClose`: on TLS, the shutdown is the close_notify.
    func shutdownOutputAfterWrites(thenClose: Bool, _ done: @escaping (Error?) -> Void) {
        guard let context else { return done(ChannelError.ioOnClosedChannel) }
        if directSocket != -1, writesInNIO == 0 {
            context.close(mode: .output, promise: nil)
            return done(nil)
        }
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
        unflushedInNIO = false
        context.writeAndFlush(NIOAny(ByteBuffer()), promise: drained)
    }

    func resumeReading() {
        context?.read()
    }

    func close() {
        directSocket = -1
        context?.close(promise: nil)
    }

    func upstreamConnected() {
        context?.triggerUserOutboundEvent(TunnelUpstreamConnected(), promise: nil)
    }
}
