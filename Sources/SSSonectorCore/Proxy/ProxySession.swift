import NIOCore
import NIOPosix
import NIOSSL
import ConfigValues
import StageABI

/// One client connection through a pipeline (docs/architecture.md, "A connection's bytes"): runs the chain's open verdicts, chooses
/// and connects an upstream with retries, relays both directions with backpressure and data
/// grants, and closes once, telling every entered stage.
///
/// Confined to the client's event loop; the upstream channel lives on the same loop.
final class ProxySession {
    enum Side { case client, upstream }
    /// `admitting`: a stage left its open verdict pending (ABI 1.3); nothing is read from the
    /// client and nothing connected until it comes or `admissionDeadline` passes.
    enum State { case opening, admitting, connecting, relaying, closed }

    let pipeline: PipelineRuntime
    /// The listener's place this connection holds under `max_connections`.
    private let gate: AdmissionGate
    let loop: EventLoop
    let chain: ConnectionChain
    private(set) var state = State.opening
    private var client: ChannelHandlerContext?
    private var upstream: ChannelHandlerContext?
    private var up = RelayPipe(direction: SSS_DIR_UP)
    private var down = RelayPipe(direction: SSS_DIR_DOWN)
    private var planner: RetryPlanner
    private var snapshot: UpstreamSnapshot?
    private var upstreamIndex = -1
    private var upstreamCounters: UpstreamCounters?
    private var attemptStartedAt: UInt64 = 0
    private var connectLatency: UInt64 = 0
    private let acceptedAt: UInt64
    private var firstEOF: UInt32?
    /// The side's channel closed after its FIN (an orderly close, not a reset).
    private var clientGone = false
    private var upstreamGone = false
    private var rejectedBy = -1
    private var reasonCode = SSS_REASON_NONE
    private var reasonText = ""
    /// Whether each side's channel takes more writes: NIO's writability, mirrored from its
    /// events, so the check before every read does not go through the channel.
    private var clientWritable = true
    private var upstreamWritable = true
    /// When a byte (or an EOF) last moved either way: the idle timeout counts from here.
    private var lastActivityAt: UInt64
    /// This loop's idle deadlines and our place in them.
    private let idleTimers: LoopIdleTimers
    private let idleEntry = IdleQueue<ProxySession>.Entry()
    private var retryTimer: Scheduled<Void>?
    /// This loop's index: its warm pools serve this connection.
    private let loopIndex: Int
    /// The current attempt was served by a warm pool connection.
    private var servedByPool = false
    /// While admitting: when the pending stage's fallback applies (its own timeout, bounded by
    /// `open_timeout` from the start of the open phase).
    private var admissionDeadline: UInt64 = .max
    private var openStartedAt: UInt64 = 0

    /// The client's IP, for logs (formatted by the chain, once).
    var peerIP: String { chain.peerIPText }

    /// The client is a connector's tunnel stream: it is told when the upstream is connected
    /// (the relay's CONNECT is answered then).
    private let tunnelStream: Bool
    /// The client's address (a reverse upstream's stream carries it to the connector).
    private let peer: SocketAddress?

    init(pipeline: PipelineRuntime, gate: AdmissionGate, loop: EventLoop, idleTimers: LoopIdleTimers, id: UInt64,
         threadIndex: Int, peer: SocketAddress?, local: SocketAddress?, tunnelStream: Bool = false) {
        self.tunnelStream = tunnelStream
        self.peer = peer
        self.pipeline = pipeline
        self.gate = gate
        self.idleTimers = idleTimers
        self.loop = loop
        self.acceptedAt = pipeline.clock.monotonicNanoseconds()
        self.lastActivityAt = acceptedAt
        self.loopIndex = threadIndex
        self.planner = RetryPlanner(retryAttempts: pipeline.config.connection.retryAttempts,
                                    retryInterval: pipeline.config.connection.retryInterval)
        self.chain = ConnectionChain(chain: pipeline.chain, id: id, threadIndex: threadIndex,
                                     peer: peer.stageAddress, local: local.stageAddress,
                                     acceptedAt: acceptedAt)
    }

    var id: UInt64 { chain.id }
    private var now: UInt64 { pipeline.clock.monotonicNanoseconds() }
    private var settings: ConnectionSettings { pipeline.config.connection }

    // MARK: life cycle

    /// The client side is ready (connected; TLS handshake done on a TLS listener): run the open
    /// verdicts, then connect.
    func start(peerIdentity: String?) {
        guard state == .opening else { return }
        if let peerIdentity {
            chain.setPeerIdentity(peerIdentity)
            pipeline.logger.info("TLS client verified", metadata: [
                "connection": "\(id)", "peer": "\(peerIP)", "identity": "\(peerIdentity)",
            ])
        }
        openStartedAt = now
        openDecided(chain.open(now: openStartedAt))
    }

    /// Acts on how the open hooks ended: connect, reject, or wait for a pending verdict.
    private func openDecided(_ outcome: ConnectionChain.OpenOutcome) {
        if state == .admitting {
            state = .opening
            pipeline.counters.figures.subtract(.pending)
        }
        switch outcome {
        case .accepted:
            up.inspected = chain.inspectsUp
            down.inspected = chain.inspectsDown
            state = .connecting
            connectNext()
        case .rejected(let stage, let code, let text):
            rejectedBy = stage
            reasonCode = code
            reasonText = text
            pipeline.counters.rejected(ABINames.reason(code))
            finish(SSS_CLOSE_REJECTED)
        case .pending(_, let timeout):
            state = .admitting
            pipeline.counters.figures.add(.pending)
            let bound = openStartedAt.addingSaturated(settings.openTimeout)
            admissionDeadline = timeout == 0 ? bound : min(bound, now.addingSaturated(timeout))
            armIdleTimer()
        }
    }

    /// A stage posted the verdict it left pending (`conn_post_verdict`).
    func postedVerdict(_ posted: PostedVerdict) {
        guard state == .admitting, let outcome = chain.settle(posted, now: now) else {
            return pipeline.counters.figures.add(.lateVerdicts)
        }
        openDecided(outcome)
    }

    private func connectNext() {
        guard state == .connecting else { return }
        let current = snapshot ?? pipeline.upstreams.current
        snapshot = current
        switch chain.choose(from: current, tried: planner.triedThisRound, now: now) {
        case .noUpstream:
            if planner.attempts == 0 {
                reasonCode = SSS_REASON_NO_UPSTREAM
                pipeline.counters.rejected("no_upstream")
                finish(SSS_CLOSE_NO_UPSTREAM)
            } else {
                reasonCode = SSS_REASON_CONNECT_FAILED
                finish(SSS_CLOSE_CONNECT_FAILED)
            }
        case .rejected(let stage):
            rejectedBy = stage
            reasonCode = SSS_REASON_NO_UPSTREAM
            pipeline.counters.rejected("no_upstream")
            finish(SSS_CLOSE_REJECTED)
        case .upstream(let index):
            attempt(index, in: current)
        }
    }

    private func attempt(_ index: Int, in current: UpstreamSnapshot) {
        let entry = current.entries[index]
        planner.attempting(upstreamID: entry.id)
        chain.beginAttempt(upstream: index, in: current, attempt: planner.attempts)
        upstreamIndex = index
        attemptStartedAt = now
        if let warm = pipeline.pools.take(entry, loopIndex: loopIndex, now: attemptStartedAt) {
            return adopt(warm, index: index, in: current)
        }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let tls = pipeline.tls.upstreams[entry.name]
        UpstreamConnector.connect(to: pipeline.target(for: entry), on: loop, settings: settings,
                                  relay: pipeline.relayHub, client: peer) { channel in
            if let tls {
                try channel.pipeline.syncOperations.addHandler(
                    try NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverName))
            }
            try channel.pipeline.syncOperations.addHandler(
                RelaySideHandler(session: bound.value, side: .upstream, awaitsHandshake: tls != nil))
        }.whenComplete { result in
            let session = bound.value
            if tls != nil, case .success(let channel) = result {
                // TCP is up; the attempt succeeds only when the TLS handshake does.
                session.pendingHandshake = PendingHandshake(channel: channel, index: index, snapshot: current)
                if session.handshakeCompletedEarly {
                    session.upstreamHandshakeCompleted()
                } else {
                    // connect_timeout bounds the TLS handshake too.
                    let remaining = session.settings.connectTimeout &- (session.now &- session.attemptStartedAt)
                    session.handshakeTimer = session.loop.scheduleTask(in: .nanoseconds(Int64(clamping: max(remaining, 1)))) {
                        _ = bound.value.upstreamHandshakeFailed(ChannelError.connectTimeout(.nanoseconds(Int64(clamping: remaining))))
                    }
                }
            } else {
                session.connectCompleted(result, index: index, in: current)
            }
        }
    }

    /// Relays over a warm pool connection (TCP up, TLS verified ahead): the relay's handler
    /// takes the place of the pool's, a server-first greeting the pool kept becomes the first
    /// bytes down, and the attempt succeeds at once.
    private func adopt(_ warm: WarmConnection, index: Int, in current: UpstreamSnapshot) {
        let greeting = warm.greeting
        guard let channel = warm.takeChannel() else { return connectNext() }
        do {
            try channel.pipeline.syncOperations.addHandler(RelaySideHandler(session: self, side: .upstream))
        } catch {
            channel.close(promise: nil)
            return connectCompleted(.failure(error), index: index, in: current)
        }
        if let greeting { down.hold(greeting) }
        servedByPool = true
        connectCompleted(.success(channel), index: index, in: current)
    }

    /// An upstream whose TCP connect succeeded and whose TLS handshake is in progress.
    struct PendingHandshake {
        let channel: Channel
        let index: Int
        let snapshot: UpstreamSnapshot
    }
    private var pendingHandshake: PendingHandshake?
    private var handshakeCompletedEarly = false
    private var handshakeTimer: Scheduled<Void>?

    /// The upstream's TLS handshake completed: the attempt succeeded.
    func upstreamHandshakeCompleted() {
        guard let pending = pendingHandshake else {
            handshakeCompletedEarly = true
            return
        }
        pendingHandshake = nil
        handshakeCompletedEarly = false
        handshakeTimer?.cancel()
        connectCompleted(.success(pending.channel), index: pending.index, in: pending.snapshot)
    }

    /// The upstream's TLS handshake failed (or the connection closed during it): the attempt
    /// failed, and the retry policy decides what follows.
    private func upstreamHandshakeFailed(_ error: Error) -> Bool {
        guard state == .connecting, let pending = pendingHandshake else { return false }
        pendingHandshake = nil
        handshakeTimer?.cancel()
        upstream = nil
        pending.channel.close(promise: nil)
        connectCompleted(.failure(error), index: pending.index, in: pending.snapshot)
        return true
    }

    /// A TLS client failed its handshake with our listener: refused, logged and counted.
    private func clientHandshakeFailed(_ error: Error) {
        pipeline.counters.rejected("tls_handshake")
        pipeline.logger.warning("TLS handshake refused", metadata: [
            "connection": "\(id)", "peer": "\(peerIP)", "error": "\(error)",
        ])
        reasonCode = SSS_REASON_POLICY
        finish(SSS_CLOSE_ERROR)
    }

    private func connectCompleted(_ result: Result<Channel, Error>, index: Int, in current: UpstreamSnapshot) {
        let latency = now &- attemptStartedAt
        switch result {
        case .success(let channel):
            guard state == .connecting else {
                channel.close(promise: nil)  // the client left while we connected
                return
            }
            _ = chain.report(outcome: SSS_CONNECT_OK, upstream: index, in: current, attempt: planner.attempts,
                             osErrno: 0, latency: latency, remainingUntried: 0, now: now, pooled: servedByPool)
            connectLatency = latency
            pipeline.counters.connected(latency: latency)
            if !servedByPool {
                pipeline.pools.noteColdConnect(current.entries[index], loopIndex: loopIndex, nanoseconds: latency)
            }
            let counters = current.entries[index].counters
            counters.figures.add(.active)
            counters.figures.add(.total)
            upstreamCounters = counters
            upstreamWritable = channel.isWritable
            state = .relaying
            if tunnelStream { client?.triggerUserOutboundEvent(TunnelUpstreamConnected(), promise: nil) }
            releaseEarlyBytes()
            resumeReading(.client)
            resumeReading(.upstream)
            maybeForwardEOF(SSS_DIR_UP)
        case .failure(let error):
            pipeline.counters.figures.add(.failedConnects)
            guard state == .connecting else { return }
            let (outcome, errno) = UpstreamConnector.classify(error)
            let untried = current.entries.filter { !$0.draining && !planner.triedThisRound.contains($0.id) }.count
            let decision = chain.report(outcome: outcome, upstream: index, in: current, attempt: planner.attempts,
                                        osErrno: errno, latency: latency, remainingUntried: untried, now: now)
            pipeline.logger.debug("upstream connect failed", metadata: [
                "connection": "\(id)", "upstream": "\(current.entries[index].name)",
                "outcome": "\(ABINames.connectOutcome(outcome))", "attempt": "\(planner.attempts)",
            ])
            switch planner.afterFailure(untried: untried, decision: decision) {
            case .tryNow:
                snapshot = nil
                connectNext()
            case .tryAfter(let delay):
                let bound = NIOLoopBound(self, eventLoop: loop)
                retryTimer = loop.scheduleTask(in: .nanoseconds(Int64(clamping: delay))) {
                    bound.value.snapshot = nil
                    bound.value.connectNext()
                }
            case .giveUp:
                reasonCode = SSS_REASON_CONNECT_FAILED
                finish(SSS_CLOSE_CONNECT_FAILED)
            }
        }
    }

    /// Sends what arrived before relaying started (see `read`).
    private func releaseEarlyBytes() {
        for direction in [SSS_DIR_UP, SSS_DIR_DOWN] {
            let held = direction == SSS_DIR_UP ? up.heldBytes : down.heldBytes
            guard held > 0 else { continue }
            let inspected = direction == SSS_DIR_UP ? up.inspected : down.inspected
            if inspected {
                offer(direction, reoffer: false)
            } else if direction == SSS_DIR_UP {
                up.released = up.received
                while let chunk = up.nextReleasedChunk() { upstream?.write(NIOAny(chunk), promise: nil) }
            } else {
                down.released = down.received
                while let chunk = down.nextReleasedChunk() { client?.write(NIOAny(chunk), promise: nil) }
            }
            flush(direction)
        }
    }

    /// Closes both sides and tells the stages, once.
    func finish(_ cause: UInt32) {
        guard state != .closed else { return }
        if state == .admitting { pipeline.counters.figures.subtract(.pending) }
        state = .closed
        if idleEntry.isArmed { idleTimers.queue.cancel(idleEntry) }
        retryTimer?.cancel()
        up.reofferTimer?.cancel()
        down.reofferTimer?.cancel()
        client?.close(promise: nil)
        upstream?.close(promise: nil)
        var info = ConnectionChain.CloseInfo(cause: cause)
        info.rejectedBy = rejectedBy
        info.reasonCode = reasonCode
        info.reasonText = reasonText
        info.upstreamIndex = upstreamCounters == nil ? -1 : upstreamIndex
        info.upstreamID = upstreamCounters == nil ? 0 : snapshot?.entries[upstreamIndex].id ?? 0
        info.attempts = planner.attempts
        info.bytesUp = up.written
        info.bytesDown = down.written
        let end = now
        info.duration = end &- acceptedAt
        info.connectLatency = connectLatency
        chain.close(info, now: end)
        upstreamCounters?.figures.subtract(.active)
        pipeline.counters.closed(bytesUp: up.written, bytesDown: down.written)
        gate.leave()
        pipeline.registry.remove(id)
        pipeline.leave()  // last: a retired runtime may destroy its stages now
        if pipeline.logger.logLevel <= .debug {
            pipeline.logger.debug("connection closed", metadata: [
                "connection": "\(id)", "cause": "\(ABINames.closeCause(cause))",
                "bytes_up": "\(up.written)", "bytes_down": "\(down.written)",
            ])
        }
        up.held = nil
        down.held = nil
        client = nil
        upstream = nil
    }

    // MARK: events from the two sides

    func attached(_ side: Side, _ context: ChannelHandlerContext) {
        if side == .upstream {
            upstream = context
        } else {
            client = context
            armIdleTimer()  // while opening: the TLS handshake's deadline
        }
    }

    /// Whether the side may read now (its pipe is relaying and has room).
    func mayRead(_ side: Side) -> Bool {
        guard state == .relaying else { return false }
        switch side {
        case .client: return up.mayRead(sinkWritable: upstreamWritable, limit: settings.bufferLimit)
        case .upstream: return down.mayRead(sinkWritable: clientWritable, limit: settings.bufferLimit)
        }
    }

    func readSuppressed(_ side: Side) {
        if side == .client { up.readSuppressed = true } else { down.readSuppressed = true }
    }

    func read(_ side: Side, _ buffer: ByteBuffer) {
        guard state == .relaying else {
            // Bytes decrypted together with the last TLS handshake message can arrive before
            // the upstream is connected: keep them; they go out when relaying starts.
            if state != .closed { side == .client ? up.hold(buffer) : down.hold(buffer) }
            return
        }
        if side == .client {
            if up.inspected {
                up.hold(buffer)
                offer(SSS_DIR_UP, reoffer: false)
            } else {
                up.passThrough(buffer)
                upstream?.write(NIOAny(buffer), promise: nil)
            }
        } else {
            if down.inspected {
                down.hold(buffer)
                offer(SSS_DIR_DOWN, reoffer: false)
            } else {
                down.passThrough(buffer)
                client?.write(NIOAny(buffer), promise: nil)
            }
        }
    }

    /// The end of a read burst: notes the activity once per burst (one clock read, not one
    /// per chunk) and flushes what the burst wrote.
    func readComplete(_ side: Side) {
        if state == .relaying { lastActivityAt = now }
        flush(side == .client ? SSS_DIR_UP : SSS_DIR_DOWN)
    }

    /// Flushes a direction's sink. A flush (like a write) may re-enter this session
    /// synchronously (writability changes), so no access to a pipe spans the call.
    private func flush(_ direction: UInt32) {
        if direction == SSS_DIR_UP {
            guard up.unflushed else { return }
            up.unflushed = false
            upstream?.flush()
        } else {
            guard down.unflushed else { return }
            down.unflushed = false
            client?.flush()
        }
    }

    /// Offers a direction's held bytes to its stages and writes what they release.
    private func offer(_ direction: UInt32, reoffer: Bool) {
        guard state == .relaying else { return }
        let grant: ConnectionChain.Grant
        let isUp = direction == SSS_DIR_UP
        let received = isUp ? up.received : down.received
        let eof = isUp ? up.eofReceived : down.eofReceived
        let buffered = isUp ? up.heldBytes : down.heldBytes
        if chain.wantsSlices {
            // Views of the held chunks only when a stage asked for payload.
            let slices = isUp ? HeldBytesSlices(held: up.held ?? [], base: up.written) : HeldBytesSlices(held: down.held ?? [], base: down.written)
            grant = chain.offer(direction: direction, received: received, eof: eof, buffered: buffered, now: now,
                                reoffer: reoffer, slices: slices)
        } else {
            grant = chain.offer(direction: direction, received: received, eof: eof, buffered: buffered, now: now,
                                reoffer: reoffer)
        }
        if let reason = grant.closeReason {
            reasonCode = reason
            finish(SSS_CLOSE_STAGE_CLOSED)
            return
        }
        // Writes may re-enter the session (writability changes): take one chunk at a time so
        // no access to the pipe spans a write.
        if direction == SSS_DIR_UP {
            up.released = grant.releasedUpTo
            while let chunk = up.nextReleasedChunk() { upstream?.write(NIOAny(chunk), promise: nil) }
        } else {
            down.released = grant.releasedUpTo
            while let chunk = down.nextReleasedChunk() { client?.write(NIOAny(chunk), promise: nil) }
        }
        if grant.retryAfter > 0 { armReoffer(direction, after: grant.retryAfter) }
        maybeForwardEOF(direction)
    }

    private func armReoffer(_ direction: UInt32, after delay: UInt64) {
        let armed = direction == SSS_DIR_UP ? up.reofferTimer != nil : down.reofferTimer != nil
        guard !armed, state == .relaying else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let timer = loop.scheduleTask(in: .nanoseconds(Int64(clamping: delay))) {
            bound.value.reofferTimerFired(direction)
        }
        if direction == SSS_DIR_UP { up.reofferTimer = timer } else { down.reofferTimer = timer }
    }

    private func reofferTimerFired(_ direction: UInt32) {
        if direction == SSS_DIR_UP { up.reofferTimer = nil } else { down.reofferTimer = nil }
        resume(direction)
    }

    /// Offers held bytes again (a timer fired, or a stage posted a resume), flushes, and lets
    /// the source read again when there is room.
    func resume(_ direction: UInt32) {
        guard state == .relaying else { return }
        offer(direction, reoffer: true)
        flush(direction)
        resumeReading(direction == SSS_DIR_UP ? .client : .upstream)
    }

    /// Issues a suppressed read on `side` if it may read now.
    private func resumeReading(_ side: Side) {
        guard mayRead(side) else { return }
        switch side {
        case .client where up.readSuppressed:
            up.readSuppressed = false
            client?.read()
        case .upstream where down.readSuppressed:
            down.readSuppressed = false
            upstream?.read()
        default: break
        }
    }

    /// The side's channel became writable or unwritable; once writable again, the other side
    /// may read.
    func writabilityChanged(_ side: Side, writable: Bool) {
        if side == .client { clientWritable = writable } else { upstreamWritable = writable }
        if writable { resumeReading(side == .client ? .upstream : .client) }
    }

    /// The side half-closed its output (FIN).
    func inputClosed(_ side: Side) {
        lastActivityAt = now
        if side == .client {
            up.eofReceived = true
            if firstEOF == nil { firstEOF = SSS_CLOSE_CLIENT_EOF }
            if state == .relaying, up.inspected { offer(SSS_DIR_UP, reoffer: false) } else { maybeForwardEOF(SSS_DIR_UP) }
        } else {
            down.eofReceived = true
            if firstEOF == nil { firstEOF = SSS_CLOSE_UPSTREAM_EOF }
            if state == .relaying, down.inspected { offer(SSS_DIR_DOWN, reoffer: false) } else { maybeForwardEOF(SSS_DIR_DOWN) }
        }
    }

    /// Passes a half-close on once every byte before it has been written: an empty write's
    /// promise completes after the earlier writes, and only then is the sink's output shut
    /// (shutting it with writes pending would drop them when its input is closed already).
    private func maybeForwardEOF(_ direction: UInt32) {
        guard state == .relaying else { return }
        let sink: ChannelHandlerContext?
        if direction == SSS_DIR_UP {
            guard up.eofReceived, !up.eofForwarded, up.written == up.received else { return }
            up.eofForwarded = true
            sink = upstream
        } else {
            guard down.eofReceived, !down.eofForwarded, down.written == down.received else { return }
            down.eofForwarded = true
            sink = client
        }
        guard let sink else { return }
        let drained = loop.makePromise(of: Void.self)
        let bound = NIOLoopBound(self, eventLoop: loop)
        drained.futureResult.whenComplete { result in bound.value.eofDrained(direction, result) }
        if direction == SSS_DIR_UP { up.unflushed = false } else { down.unflushed = false }
        sink.writeAndFlush(NIOAny(ByteBuffer()), promise: drained)
    }

    private func eofDrained(_ direction: UInt32, _ result: Result<Void, Error>) {
        guard state == .relaying else { return }
        if case .failure(let error) = result {
            return failed(direction == SSS_DIR_UP ? .upstream : .client, error)
        }
        let sink = direction == SSS_DIR_UP ? upstream : client
        sink?.close(mode: .output, promise: nil)
        if direction == SSS_DIR_UP { up.eofDelivered = true } else { down.eofDelivered = true }
        // Done when both directions ended, or when this direction's source has closed entirely.
        let sourceGone = direction == SSS_DIR_UP ? clientGone : upstreamGone
        if (up.eofDelivered && down.eofDelivered) || sourceGone {
            finish(firstEOF ?? SSS_CLOSE_CLIENT_EOF)
        }
    }

    func failed(_ side: Side, _ error: Error) {
        guard state != .closed else { return }
        if side == .upstream, upstreamHandshakeFailed(error) { return }
        if side == .upstream && state == .connecting { return }  // a failed attempt (a tunnel stream), handled by the connector
        if side == .client, state == .opening { return clientHandshakeFailed(error) }
        // A TLS peer that closes TCP without close_notify after its data: treated as its EOF,
        // as HAProxy and nginx do (the bytes before it were authenticated).
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls, state == .relaying {
            return inputClosed(side)
        }
        pipeline.logger.debug("connection error", metadata: ["connection": "\(id)", "side": "\(side)", "error": "\(error)"])
        let reset = UpstreamConnector.isReset(error)
        switch side {
        case .client: finish(reset ? SSS_CLOSE_CLIENT_RESET : SSS_CLOSE_ERROR)
        case .upstream: finish(reset ? SSS_CLOSE_UPSTREAM_RESET : SSS_CLOSE_ERROR)
        }
    }

    /// A side's channel closed. A reset arrives as an error first (`failed`). Without one, the
    /// close is orderly: the side sent its FIN (NIO closes the channel on EOF without an
    /// `inputClosed` event once our output to it is shut already). Finish once its bytes have
    /// reached the other side.
    func inactive(_ side: Side) {
        guard state != .closed else { return }
        if side == .upstream, upstreamHandshakeFailed(ChannelError.eof) { return }
        if side == .upstream && state == .connecting { return }  // a failed attempt, handled by the connector
        if side == .client && state == .opening { return clientHandshakeFailed(ChannelError.eof) }
        // The client left while a stage decided: the stages hear it once, in on_close.
        if side == .client && state == .admitting { return finish(up.eofReceived ? SSS_CLOSE_CLIENT_EOF : SSS_CLOSE_CLIENT_RESET) }
        let orderly = side == .client ? (up.eofReceived || down.eofForwarded) : (down.eofReceived || up.eofForwarded)
        guard orderly, state == .relaying else {
            return finish(side == .client ? SSS_CLOSE_CLIENT_RESET : SSS_CLOSE_UPSTREAM_RESET)
        }
        if side == .client {
            clientGone = true
            if !up.eofReceived { inputClosed(.client) }
            if up.eofDelivered { finish(firstEOF ?? SSS_CLOSE_CLIENT_EOF) }
        } else {
            upstreamGone = true
            if !down.eofReceived { inputClosed(.upstream) }
            if down.eofDelivered { finish(firstEOF ?? SSS_CLOSE_UPSTREAM_EOF) }
        }
    }

    // MARK: timers and posts

    /// Closes the connection `idle_timeout` after the last byte either way. The relay only
    /// notes the time of each chunk; the deadline moves when it comes due and finds newer
    /// activity, so there is no timer work per chunk.
    ///
    /// Until the client's TLS handshake completes, the deadline is `connect_timeout` after the
    /// accept instead: a client that connects and sends nothing must not hold one of the
    /// `max_connections` places for the whole idle timeout.
    private func armIdleTimer() {
        let deadline = nextDeadline
        if deadline == .max {
            if idleEntry.isArmed { idleTimers.queue.cancel(idleEntry) }
        } else {
            idleTimers.queue.arm(idleEntry, for: self, deadline: deadline)
        }
    }

    private var inHandshake: Bool { state == .opening && pipeline.tls.server != nil }

    /// The deadline in force: the handshake's, or the idle timeout's (`UInt64.max`: none).
    private var nextDeadline: UInt64 {
        if state == .admitting { return admissionDeadline }
        if inHandshake { return acceptedAt.addingSaturated(settings.connectTimeout) }
        return settings.idleTimeout == 0 ? .max : lastActivityAt.addingSaturated(settings.idleTimeout)
    }

    /// The idle deadline came due (called by the idle queue).
    func idleDeadlinePassed() {
        guard state != .closed else { return }
        let deadline = nextDeadline
        if deadline <= now {
            if state == .admitting {
                pipeline.counters.figures.add(.openTimeouts)
                return chain.settleWithFallback(now: now).map(openDecided) ?? finish(SSS_CLOSE_ERROR)
            }
            if inHandshake { return clientHandshakeFailed(ChannelError.connectTimeout(.nanoseconds(Int64(saturatingNanoseconds: settings.connectTimeout)))) }
            finish(SSS_CLOSE_IDLE_TIMEOUT)
        } else {
            armIdleTimer()
        }
    }

    /// A stage asked (conn_post_close) to close this connection.
    func postedClose(reason: UInt32) {
        guard state != .closed else { return }
        reasonCode = reason
        finish(SSS_CLOSE_STAGE_CLOSED)
    }
}
