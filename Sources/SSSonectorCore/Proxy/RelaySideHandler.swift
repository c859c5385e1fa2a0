import NIOCore

/// The channel handler on each side of a relayed connection (client and upstream). It hands
/// every event to the shared `ProxySession` and holds back `read()` while the other side cannot
/// take more bytes: the backpressure pattern of swift-nio-examples' GlueHandler.
final class RelaySideHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: ProxySession?
    private let side: ProxySession.Side

    init(session: ProxySession, side: ProxySession.Side) {
        self.session = session
        self.side = side
    }

    func handlerAdded(context: ChannelHandlerContext) {
        session?.attached(side, context)
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .client { session?.start(client: context) }
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
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { session?.writabilityChanged(side) }
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
        guard let session else { return context.read() }
        if session.mayRead(side) {
            context.read()
        } else {
            session.readSuppressed(side)
        }
    }
}
