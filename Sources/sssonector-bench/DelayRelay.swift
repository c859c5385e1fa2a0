import NIOCore
import NIOPosix

/// A TCP relay that adds a round-trip time in user space, for latency benchmarks on one machine
/// (`tc netem` is not available here). Every byte reaches the other side half a round trip
/// after it arrived, and nothing moves before one round trip after the accept: a real TCP
/// connection is not usable before its handshake's round trip, and its first data then takes
/// half a round trip more. Nothing is dropped or reordered; there is no backpressure beyond the
/// sockets' own (small messages only).
enum DelayRelay {
    static func start(listenHost: String, listenPort: Int, target: (host: String, port: Int),
                      roundTrip: UInt64, group: EventLoopGroup) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)  // rebind while old connections are in TIME_WAIT
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { client in
                client.eventLoop.makeCompletedFuture {
                    let pair = DelayedPair(loop: client.eventLoop, roundTrip: roundTrip)
                    try client.pipeline.syncOperations.addHandler(DelaySide(pair: pair, isClient: true))
                    let bound = NIOLoopBound(pair, eventLoop: client.eventLoop)
                    ClientBootstrap(group: client.eventLoop)
                        .channelOption(.socketOption(.tcp_nodelay), value: 1)
                        .channelOption(.allowRemoteHalfClosure, value: true)
                        .channelInitializer { upstream in
                            upstream.eventLoop.makeCompletedFuture {
                                try upstream.pipeline.syncOperations.addHandler(DelaySide(pair: bound.value, isClient: false))
                            }
                        }
                        .connect(host: target.host, port: target.port)
                        .whenFailure { _ in client.close(promise: nil) }
                }
            }
            .bind(host: listenHost, port: listenPort).wait()
    }
}

/// Both sides of one relayed connection and the bytes in flight each way. Loop-confined.
final class DelayedPair {
    /// Bytes (or a half-close: nil) due at a deadline, per direction, in arrival order.
    struct Pending {
        var items = CircularBuffer<(due: NIODeadline, bytes: ByteBuffer?)>()
        var timer: Scheduled<Void>?
    }

    let loop: EventLoop
    let halfTrip: TimeAmount
    /// Nothing is delivered before the handshake's round trip has passed.
    let usableAt: NIODeadline
    var client: Channel?
    var upstream: Channel?
    private var toUpstream = Pending()
    private var toClient = Pending()

    init(loop: EventLoop, roundTrip: UInt64) {
        self.loop = loop
        halfTrip = .nanoseconds(Int64(roundTrip / 2))
        usableAt = .now() + .nanoseconds(Int64(roundTrip))
    }

    /// Bytes (nil: a half-close) that arrived from one side, for the other.
    func arrived(_ bytes: ByteBuffer?, fromClient: Bool) {
        let due = max(NIODeadline.now(), usableAt) + halfTrip
        if fromClient { toUpstream.items.append((due, bytes)) } else { toClient.items.append((due, bytes)) }
        arm(towardUpstream: fromClient)
    }

    private func arm(towardUpstream: Bool) {
        let pending = towardUpstream ? toUpstream : toClient
        guard pending.timer == nil, let head = pending.items.first else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let timer = loop.scheduleTask(deadline: head.due) { bound.value.deliver(towardUpstream: towardUpstream) }
        if towardUpstream { toUpstream.timer = timer } else { toClient.timer = timer }
    }

    private func deliver(towardUpstream: Bool) {
        if towardUpstream { toUpstream.timer = nil } else { toClient.timer = nil }
        guard let sink = towardUpstream ? upstream : client else {
            // Still connecting to the upstream: try again shortly.
            let bound = NIOLoopBound(self, eventLoop: loop)
            let retry = loop.scheduleTask(in: .milliseconds(1)) { bound.value.deliver(towardUpstream: towardUpstream) }
            if towardUpstream { toUpstream.timer = retry } else { toClient.timer = retry }
            return
        }
        let now = NIODeadline.now()
        while let head = (towardUpstream ? toUpstream : toClient).items.first, head.due <= now {
            if towardUpstream { toUpstream.items.removeFirst() } else { toClient.items.removeFirst() }
            if let bytes = head.bytes {
                sink.write(bytes, promise: nil)
            } else {
                sink.flush()
                sink.close(mode: .output, promise: nil)
            }
        }
        sink.flush()
        arm(towardUpstream: towardUpstream)
    }

    func closed() {
        client?.close(promise: nil)
        upstream?.close(promise: nil)
    }
}

/// One side of a `DelayedPair`.
final class DelaySide: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let pair: DelayedPair
    private let isClient: Bool

    init(pair: DelayedPair, isClient: Bool) {
        self.pair = pair
        self.isClient = isClient
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if isClient { pair.client = context.channel } else { pair.upstream = context.channel }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pair.arrived(unwrapInboundIn(data), fromClient: isClient)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { pair.arrived(nil, fromClient: isClient) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { pair.closed() }

    func channelInactive(context: ChannelHandlerContext) {
        // Let what is in flight arrive first: close after a full round trip.
        let pair = NIOLoopBound(self.pair, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: self.pair.halfTrip + self.pair.halfTrip) { pair.value.closed() }
    }
}
