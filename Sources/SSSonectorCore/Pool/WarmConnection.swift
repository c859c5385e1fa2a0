import NIOCore
import NIOTLS

/// One upstream connection of a warm pool: opening (TCP, then TLS), idle and ready for a
/// client, taken by one, or gone. Confined to its pool's event loop.
final class WarmConnection {
    enum State { case opening, idle, taken, closed }
    var state = State.opening
    private(set) var channel: Channel?
    /// When the refill started, and when it became ready (TCP up, TLS verified).
    let startedAt: UInt64
    var readyAt: UInt64 = 0
    /// This connection's share (0..<1) of the idle-time jitter.
    let jitter = Double.random(in: 0..<1)
    /// What a server-speaks-first upstream sent while idle: the client gets it first.
    var greeting: ByteBuffer?
    fileprivate(set) var handler: WarmIdleHandler?
    /// Bounds the TLS handshake by `connect_timeout` (TCP has the bootstrap's timeout).
    var handshakeTimer: Scheduled<Void>?

    init(startedAt: UInt64) {
        self.startedAt = startedAt
    }

    /// The channel's TCP state says the upstream has not closed its side: the FIN of an
    /// upstream that closed a moment ago may be queued on the socket, not yet read by the loop.
    /// One `getsockopt(TCP_INFO)` at checkout keeps such a connection from a client.
    var isStillOpen: Bool {
        guard let channel, channel.isActive else { return false }
        guard let provider = channel as? SocketOptionProvider else { return true }
        let open = CheckoutFlag()
        // On the channel's own loop the option is read at once and the future is complete, so
        // the callback runs before this returns. 1 is TCP_ESTABLISHED (<netinet/tcp.h>).
        provider.getTCPInfo().whenSuccess { info in open.value = info.tcpi_state == 1 }
        return open.value
    }

    /// Closes the channel (the handler then reports nothing more).
    func close() {
        state = .closed
        handshakeTimer?.cancel()
        handler?.detach()
        channel?.close(promise: nil)
    }

    /// Hands the channel to a client's relay: the pool's handler leaves the pipeline.
    func takeChannel() -> Channel? {
        state = .taken
        handshakeTimer?.cancel()
        if let handler, let channel {
            handler.detach()
            channel.pipeline.syncOperations.removeHandler(handler, promise: nil)
        }
        handler = nil
        return channel
    }

    fileprivate func attach(_ handler: WarmIdleHandler, channel: Channel) {
        self.handler = handler
        self.channel = channel
    }
}

/// A result written by a callback that runs before its caller returns (on the same loop).
private final class CheckoutFlag: @unchecked Sendable {
    var value = true
}

/// Watches a warm connection while it waits: ready once TCP is up (and the TLS handshake and
/// certificate checks are done), and lost the moment the upstream closes, resets or sends
/// bytes nobody asked for. NIO reports a FIN even with nothing to read (it registers for
/// read-EOF), and TLS records go through the TLS handler first, so a session ticket is not
/// mistaken for data.
final class WarmIdleHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// What the pool hears about its connection.
    enum Event {
        case ready
        case data(ByteBuffer)
        case lost(Error?)
    }

    private let connection: WarmConnection
    private var report: ((WarmConnection, Event) -> Void)?
    private let awaitsHandshake: Bool

    init(connection: WarmConnection, awaitsHandshake: Bool, report: @escaping (WarmConnection, Event) -> Void) {
        self.connection = connection
        self.awaitsHandshake = awaitsHandshake
        self.report = report
    }

    /// No more events to the pool (the connection was taken or closed).
    func detach() { report = nil }

    func handlerAdded(context: ChannelHandlerContext) {
        connection.attach(self, channel: context.channel)
    }

    func channelActive(context: ChannelHandlerContext) {
        if !awaitsHandshake { report?(connection, .ready) }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            report?(connection, .ready)
        } else if let e = event as? ChannelEvent, e == .inputClosed {
            report?(connection, .lost(nil))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        report?(connection, .data(unwrapInboundIn(data)))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        report?(connection, .lost(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        report?(connection, .lost(nil))
        report = nil
        context.fireChannelInactive()
    }
}
