import Foundation
import Locking
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// An upstream for warm-pool tests that counts what it sees: connections accepted and open now,
/// TLS handshakes completed. It echoes; optionally it greets on connect (server-speaks-first)
/// and closes every connection that has received no byte for `idleTimeout` (an upstream with an
/// idle timeout, checked every tenth of it).
final class PoolUpstream: @unchecked Sendable {
    final class Counts: Sendable {
        let accepted = Atomic<Int>(0)
        let open = Atomic<Int>(0)
        let handshakes = Atomic<Int>(0)
        let closedIdle = Atomic<Int>(0)
    }

    let counts = Counts()
    private let channel: Channel
    private let idleSweeper: RepeatedTask?
    var port: Int { channel.localAddress?.port ?? 0 }

    /// Connections that have received nothing yet, for the sweeper.
    typealias QuietSet = Locked<[ObjectIdentifier: (channel: Channel, since: NIODeadline)]>

    /// `tls`: a server context (handshakes are counted); `greeting`: sent on connect.
    init(tls: NIOSSLContext? = nil, greeting: String? = nil, idleTimeout: TimeAmount? = nil) throws {
        let loop = EchoUpstreams.group.next()
        let counts = self.counts
        let quiet = QuietSet([:])
        channel = try ServerBootstrap(group: loop)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(counts: counts, greeting: greeting, tls: tls != nil, quiet: idleTimeout == nil ? nil : quiet))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        if let timeout = idleTimeout {
            let step = TimeAmount.nanoseconds(timeout.nanoseconds / 10)
            idleSweeper = loop.scheduleRepeatedTask(initialDelay: step, delay: step) { _ in
                let cutoff = NIODeadline.now() - timeout
                let idle = quiet.withLock { set -> [Channel] in
                    let old = set.filter { $0.value.since <= cutoff }
                    for key in old.keys { set[key] = nil }
                    return old.values.map(\.channel)
                }
                for channel in idle {
                    counts.closedIdle.wrappingAdd(1, ordering: .relaxed)
                    channel.close(promise: nil)
                }
            }
        } else {
            idleSweeper = nil
        }
    }

    func stop() {
        idleSweeper?.cancel()
        try? channel.close().wait()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let counts: Counts
        let greeting: String?
        let tls: Bool
        let quiet: QuietSet?

        init(counts: Counts, greeting: String?, tls: Bool, quiet: QuietSet?) {
            self.counts = counts
            self.greeting = greeting
            self.tls = tls
            self.quiet = quiet
        }

        func channelActive(context: ChannelHandlerContext) {
            counts.accepted.wrappingAdd(1, ordering: .relaxed)
            counts.open.wrappingAdd(1, ordering: .relaxed)
            quiet?.withLock { $0[ObjectIdentifier(context.channel)] = (context.channel, NIODeadline.now()) }
            if !tls, let greeting { context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: greeting)), promise: nil) }
            context.fireChannelActive()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let e = event as? TLSUserEvent, case .handshakeCompleted = e {
                counts.handshakes.wrappingAdd(1, ordering: .relaxed)
                if let greeting { context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: greeting)), promise: nil) }
            } else if let e = event as? ChannelEvent, e == .inputClosed {
                context.close(promise: nil)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            quiet?.withLock { $0[ObjectIdentifier(context.channel)] = nil }
            context.write(data, promise: nil)
        }

        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

        func channelInactive(context: ChannelHandlerContext) {
            quiet?.withLock { $0[ObjectIdentifier(context.channel)] = nil }
            counts.open.wrappingSubtract(1, ordering: .relaxed)
        }
    }
}
