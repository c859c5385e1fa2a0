import Foundation
import Histogram
import NIOCore
import NIOPosix
import SSSonectorCore

/// One simulated client, confined to its event loop: keeps a connection busy in the run's
/// mode and records what it measured.
final class LoadWorker: @unchecked Sendable {  // confined to `loop`
    let run: LoadRun
    let loop: EventLoop
    let message: ByteBuffer
    let index: Int
    private var channel: Channel?
    private var awaiting = 0
    private var sentAt: UInt64 = 0
    private var latencies = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000,
                                              numberOfSignificantValueDigits: .three)
    private var errors: [String: UInt64] = [:]
    private var stopped = false

    init(run: LoadRun, loop: EventLoop, message: ByteBuffer, index: Int) {
        self.run = run
        self.loop = loop
        self.message = message
        self.index = index
    }

    private var now: UInt64 { DispatchTime.now().uptimeNanoseconds }
    private var measuring: Bool { run.shared.measuring.load(ordering: .relaxed) }

    func start() {
        guard !stopped else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(WorkerHandler(worker: bound.value))
                }
            }
        if run.mode == .bulk {
            bootstrap = bootstrap.channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
        }
        let started = now
        bootstrap.connect(host: run.target.host, port: run.target.port).whenComplete { result in
            let worker = bound.value
            switch result {
            case .success(let channel):
                worker.channel = channel
                worker.sentAt = started
                worker.connected()
            case .failure(let error):
                worker.count(error: Self.kind(of: error))
                worker.retryLater()
            }
        }
    }

    private func connected() {
        guard !stopped, let channel else { return }
        switch run.mode {
        case .echo, .connect: send()
        case .bulk: pump(channel)
        }
    }

    private func send() {
        guard !stopped, let channel else { return }
        if run.mode != .connect { sentAt = now }
        awaiting = message.readableBytes
        channel.writeAndFlush(message, promise: nil)
    }

    /// Bulk mode: write while the channel takes more.
    private func pump(_ channel: Channel) {
        while !stopped && channel.isWritable {
            channel.write(message, promise: nil)
            run.shared.bytes.wrappingAdd(UInt64(message.readableBytes), ordering: .relaxed)
            run.shared.messages.wrappingAdd(1, ordering: .relaxed)
        }
        channel.flush()
    }

    func writable() {
        if run.mode == .bulk, let channel { pump(channel) }
    }

    func received(_ count: Int) {
        guard run.mode != .bulk, awaiting > 0 else { return }
        awaiting -= count
        guard awaiting <= 0 else { return }
        let latency = now &- sentAt
        if measuring {
            _ = latencies.record(max(1, latency))
            run.shared.messages.wrappingAdd(1, ordering: .relaxed)
            run.shared.bytes.wrappingAdd(UInt64(message.readableBytes), ordering: .relaxed)
        }
        switch run.mode {
        case .connect:
            let old = channel
            channel = nil
            old?.close(promise: nil)
            start()
        default:
            if run.interval == 0 {
                send()
            } else {
                let bound = NIOLoopBound(self, eventLoop: loop)
                loop.scheduleTask(in: .nanoseconds(Int64(run.interval))) { bound.value.send() }
            }
        }
    }

    func closed() {
        guard !stopped, channel != nil else { return }
        count(error: "closed_by_peer")
        channel = nil
        retryLater()
    }

    /// An error on an open connection (a reset, most often): counted under its kind, once.
    /// The connection is dropped here, so the close that follows is not counted again as
    /// `closed_by_peer`.
    func failed(_ error: Error) {
        guard !stopped, let failing = channel else { return }
        count(error: Self.kind(of: error))
        channel = nil
        failing.close(promise: nil)
        retryLater()
    }

    private func retryLater() {
        guard !stopped else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.scheduleTask(in: .milliseconds(100)) { bound.value.start() }
    }

    private func count(error kind: String) {
        if measuring { errors[kind, default: 0] += 1 }
    }

    func stop() -> WorkerSnapshot {
        stopped = true
        channel?.close(promise: nil)
        channel = nil
        return WorkerSnapshot(latencies: latencies, errors: errors)
    }

    static func kind(of error: Error) -> String { connectOutcomeName(of: error) }
}

/// Hands a connection's events to its worker.
final class WorkerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let worker: LoadWorker
    init(worker: LoadWorker) { self.worker = worker }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        worker.received(unwrapInboundIn(data).readableBytes)
    }
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { worker.writable() }
    }
    func channelInactive(context: ChannelHandlerContext) {
        worker.closed()
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        worker.failed(error)
    }
}
