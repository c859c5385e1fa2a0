import NIOCore
import NIOPosix

/// Carries a tunnel stream to a session on another event loop through a Unix socket pair: the
/// session gets an ordinary socket channel on its own loop, and a glue handler on the stream's
/// loop copies bytes, half-closes and resets between the pair's other end and the stream, with
/// backpressure (reads stop while the partner is unwritable). The kernel does the hop, so the
/// session and the stream stay single-threaded; it costs two descriptors and a copy, which is
/// why `RelayHub.pick` prefers a connection on the client's own loop.
enum LoopBridge {
    /// The two ends of a bridge: `local` on the session's loop, `remote` on the stream's.
    struct Pair {
        let local: Channel
        let remote: Channel

        func close() {
            local.close(promise: nil)
            remote.close(promise: nil)
        }
    }

    /// A new socket pair: one end on `streamLoop` (to be glued to a stream), the other on
    /// `sessionLoop`, set up by `initializer`.
    static func make(streamLoop: EventLoop, sessionLoop: EventLoop,
                     initializer: @escaping @Sendable (Channel) throws -> Void) -> EventLoopFuture<Pair> {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            return streamLoop.makeFailedFuture(IOError(errnoCode: errno, reason: "socketpair"))
        }
        let remote = ClientBootstrap(group: streamLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .withConnectedSocket(fds[1])
        let local = ClientBootstrap(group: sessionLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try initializer(channel) }
            }
            .withConnectedSocket(fds[0])
        return remote.and(local).hop(to: streamLoop).map { Pair(local: $0.1, remote: $0.0) }
    }

    /// Glues `stream` to the pair's `remote` end; both are on the stream's loop. Called from the
    /// stream's initializer, so no byte can arrive before the glue is there.
    static func glue(_ stream: Channel, to remote: Channel) throws {
        let (toStream, toPair) = GlueHandler.pair()
        try stream.pipeline.syncOperations.addHandler(toStream)
        try remote.pipeline.syncOperations.addHandler(toPair)
    }
}

/// Joins two channels on one event loop byte for byte (the pattern of swift-nio-examples'
/// GlueHandler): what one reads the other writes, EOF becomes the partner's half-close,
/// a close closes the partner, and a side reads only while its partner is writable.
final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// This side's input ended with an EOF (FIN or END_STREAM), not a reset.
    private var sawEOF = false

    private init() {}

    /// Two handlers that glue their channels to each other.
    static func pair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    private var partnerWritable: Bool { partner?.context?.channel.isWritable ?? false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            sawEOF = true
            partner?.closeOutputAfterPendingWrites()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset on either side ends the other without a half-close first: the session
        // reads that as the upstream's reset.
        partner?.context?.close(promise: nil)
        context.close(promise: nil)
    }

    /// After an orderly end of this side, the partner closes by itself once its output is out
    /// and its own input has ended; closing it now would drop writes it still holds.
    func channelInactive(context: ChannelHandlerContext) {
        if !sawEOF { partner?.context?.close(promise: nil) }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.readIfPending() }
        context.fireChannelWritabilityChanged()
    }

    /// Half-closes this side once what was written to it is out: a socket's output shut with
    /// writes pending would drop them (the same barrier the relay session uses).
    private func closeOutputAfterPendingWrites() {
        guard let context else { return }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(ByteBuffer()), promise: done)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        done.futureResult.whenSuccess { bound.value.close(mode: .output, promise: nil) }
    }

    private func readIfPending() {
        guard pendingRead else { return }
        pendingRead = false
        context?.read()
    }

    func read(context: ChannelHandlerContext) {
        if partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
