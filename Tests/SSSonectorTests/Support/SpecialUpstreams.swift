import Locking
import Foundation
import Glibc
import NIOCore
import NIOPosix
import Synchronization
import SSSonectorDemo

/// An upstream that greets, half-closes its output at once, and records what it then receives
/// until the client half-closes: proves half-close passes upstream → client while the other
/// direction keeps flowing.
final class GreeterUpstream: @unchecked Sendable {
    final class Record: Sendable {
        let received = Locked<[UInt8]>([])
        let sawEOF = Atomic<Bool>(false)
    }
    let channel: Channel
    let record = Record()
    var port: Int { channel.localAddress?.port ?? 0 }

    init(greeting: String) throws {
        let record = self.record
        channel = try ServerBootstrap(group: EchoUpstreams.group)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(greeting: greeting, record: record))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() { try? channel.close().wait() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let greeting: String
        let record: Record
        init(greeting: String, record: Record) {
            self.greeting = greeting
            self.record = record
        }
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: greeting)), promise: nil)
            context.close(mode: .output, promise: nil)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(buffer: unwrapInboundIn(data))
            record.received.withLock { $0 += bytes }
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let e = event as? ChannelEvent, e == .inputClosed {
                record.sawEOF.store(true, ordering: .relaxed)
                context.close(promise: nil)
            }
        }
        // With our output already shut, NIO closes the channel on the peer's FIN without an
        // inputClosed event: an orderly end all the same.
        func channelInactive(context: ChannelHandlerContext) {
            record.sawEOF.store(true, ordering: .relaxed)
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

/// An upstream that resets (RST) the connection as soon as it reads anything.
final class ResettingUpstream: @unchecked Sendable {
    let channel: Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    init() throws {
        channel = try ServerBootstrap(group: EchoUpstreams.group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler()) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() { try? channel.close().wait() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            // SO_LINGER 0: close sends RST instead of FIN.
            let channel = context.channel
            (channel as? SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }
}

/// A listener whose accept queue is full: further connects hang (SYNs are dropped), which is
/// how a connect timeout is tested without any outside address.
final class FullBacklogListener {
    let fd: Int32
    let port: Int
    private var fillers: [Int32] = []

    init() throws {
        let listener = try LoopbackSocket(listenBacklog: 0)
        fd = listener.fd
        port = listener.port
        let address = listener.address
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        // Fill the queue (backlog 0 holds one connection; a few more to be sure).
        for _ in 0..<4 {
            let c = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var target = address
            _ = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(c, $0, length) } }
            fillers.append(c)
        }
        usleep(50_000)
    }

    deinit {
        fillers.forEach { close($0) }
        close(fd)
    }
}

/// Polls `condition` until it holds or `seconds` pass (for effects in another process).
func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// An upstream that accepts one connection and reads nothing until asked: with a small receive
/// buffer, the relay's sink stops taking bytes, and backpressure must reach the client.
final class PausedUpstream {
    let listener: Int32
    let port: Int

    init(receiveBuffer: Int32 = 16 * 1024) throws {
        var size = receiveBuffer
        let socket = try LoopbackSocket(listenBacklog: 4) {  // accepted sockets inherit the buffer size
            setsockopt($0, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        listener = socket.fd
        port = socket.port
    }

    deinit { close(listener) }

    /// Accepts the relay's connection (blocking, at most `timeoutSeconds`); -1 if none came.
    func accept(timeoutSeconds: Int32 = 10) -> Int32 {
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutSeconds * 1000) == 1 else { return -1 }
        let fd = Glibc.accept(listener, nil, nil)
        var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }
}
