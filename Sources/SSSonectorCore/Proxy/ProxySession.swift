import NIOCore
import ConfigValues
import StageABI

/// One client connection through a pipeline (docs/architecture.md, "A connection's bytes"): runs
/// the chain's open verdicts, chooses and connects an upstream with retries, relays both
/// directions with backpressure and data grants (`ProxySession+Relay.swift`), and closes once,
/// telling every entered stage.
///
/// The session sees its two sides as `RelayEndpoint`s and reaches upstreams through the
/// runtime's `UpstreamDialing`, so its logic runs the same over any transport (SwiftNIO
/// channels in production, fakes in `ProxySessionTests`). Confined to the client's event loop;
/// the upstream lives on the same loop.
final class ProxySession {
    /// `admitting`: a stage left its open verdict pending (ABI 1.3); nothing is read from the
    /// client and nothing connected until it comes or `admissionDeadline` passes.
    enum State { case opening, admitting, connecting, relaying, closed }

    let pipeline: PipelineRuntime
    /// The listener's place this connection holds under `max_connections`.
    private let gate: AdmissionGate
    let loop: EventLoop
    let chain: ConnectionChain
    private(set) var state = State.opening
    var client: RelayEndpoint?
    var upstream: RelayEndpoint?
    /// Each direction's bytes and state (freed in deinit).
    let pipes = RelayPipes()
    private var planner: RetryPlanner
    private var snapshot: UpstreamSnapshot?
    private var upstreamIndex = -1
    private var upstreamCounters: UpstreamCounters?
    /// The connect attempt in flight, cancelled if the session ends first.
    private var pendingAttempt: UpstreamAttempt?
    private var attemptStartedAt: UInt64 = 0
    private var connectLatency: UInt64 = 0
    private let acceptedAt: UInt64
    /// The close cause of the first FIN either way (the cause of an orderly close).
    var firstEOF: UInt32?
    private var rejectedBy = -1
    var reasonCode = SSS_REASON_NONE
    private var reasonText = ""
    /// When a byte (or an EOF) last moved either way: the idle timeout counts from here.
    var lastActivityAt: UInt64
    /// This loop's idle deadlines and our place in them.
    private let idleTimers: LoopIdleTimers
    private let idleEntry = IdleQueue<ProxySession>.Entry()
    private var retryTimer: Scheduled<Void>?
    /// This loop's index: its warm pools serve this connection.
    let loopIndex: Int
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
    let peer: SocketAddress?

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

    deinit { pipes.deallocate() }

    var id: UInt64 { chain.id }
    var now: UInt64 { pipeline.clock.monotonicNanoseconds() }
    var settings: ConnectionSettings { pipeline.config.connection }

    /// A side's transport (nil before it is attached, and after the close).
    func endpoint(_ side: RelaySide) -> RelayEndpoint? { side == .client ? client : upstream }

    // MARK: opening

    /// The client's transport exists (its TLS handshake may still run): its deadline starts.
    func clientAttached(_ endpoint: RelayEndpoint) {
        client = endpoint
        armIdleTimer()  // while opening: the TLS handshake's deadline
    }

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
            pipes[.up].inspected = chain.inspectsUp
            pipes[.down].inspected = chain.inspectsDown
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

    /// A TLS client failed its handshake with our listener: refused, logged and counted.
    func clientHandshakeFailed(_ error: Error) {
        pipeline.counters.rejected("tls_handshake")
        pipeline.logger.warning("TLS handshake refused", metadata: [
            "connection": "\(id)", "peer": "\(peerIP)", "error": "\(error)",
        ])
        reasonCode = SSS_REASON_POLICY
        finish(SSS_CLOSE_ERROR)
    }

    // MARK: connecting

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
        // The dialer may complete at once (a warm pool hit, a refused connect) and a retry may
        // start a new attempt inside; an attempt is returned only while it is in flight.
        let started = pipeline.dialer.dial(entry, for: self) { [self] result in
            pendingAttempt = nil
            connectCompleted(result, index: index, in: current)
        }
        if let started { pendingAttempt = started }
    }

    private func connectCompleted(_ result: Result<DialedUpstream, Error>, index: Int, in current: UpstreamSnapshot) {
        let latency = now &- attemptStartedAt
        switch result {
        case .success(let dialed):
            guard state == .connecting else {
                dialed.endpoint.close()  // the client left while we connected
                return
            }
            servedByPool = dialed.pooled
            if let greeting = dialed.greeting { pipes[.down].hold(greeting) }  // a server-first greeting: the first bytes down
            _ = chain.report(outcome: SSS_CONNECT_OK, upstream: index, in: current, attempt: planner.attempts,
                             osErrno: 0, latency: latency, remainingUntried: 0, now: now, pooled: servedByPool)
            connectLatency = latency
            planner.connected()
            pipeline.counters.connected(latency: latency)
            if !servedByPool {
                pipeline.pools.noteColdConnect(current.entries[index], loopIndex: loopIndex, nanoseconds: latency)
            }
            let counters = current.entries[index].counters
            counters.figures.add(.active)
            counters.figures.add(.total)
            upstreamCounters = counters
            upstream = dialed.endpoint
            pipes[.up].sinkWritable = dialed.writable
            state = .relaying
            if tunnelStream { client?.upstreamConnected() }
            releaseEarlyBytes()
            resumeReading(.client)
            resumeReading(.upstream)
            // A FIN may have come with the early bytes, either way: the client's while we
            // connected, or the upstream's with its first bytes (a tunnel stream reads its
            // answer and what follows it; TLS decrypts data with the last handshake message).
            for direction in RelayDirection.allCases { maybeForwardEOF(direction) }
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

    // MARK: closing

    /// Closes both sides and tells the stages, once.
    func finish(_ cause: UInt32) {
        guard state != .closed else { return }
        if state == .admitting { pipeline.counters.figures.subtract(.pending) }
        state = .closed
        if idleEntry.isArmed { idleTimers.queue.cancel(idleEntry) }
        retryTimer?.cancel()
        pendingAttempt?.cancel()
        pendingAttempt = nil
        pipes[.up].reofferTimer?.cancel()
        pipes[.down].reofferTimer?.cancel()
        client?.close()
        upstream?.close()
        var info = ConnectionChain.CloseInfo(cause: cause)
        info.rejectedBy = rejectedBy
        info.reasonCode = reasonCode
        info.reasonText = reasonText
        info.upstreamIndex = upstreamCounters == nil ? -1 : upstreamIndex
        info.upstreamID = upstreamCounters == nil ? 0 : snapshot?.entries[upstreamIndex].id ?? 0
        info.attempts = planner.attempts
        info.bytesUp = pipes[.up].written
        info.bytesDown = pipes[.down].written
        let end = now
        info.duration = end &- acceptedAt
        info.connectLatency = connectLatency
        chain.close(info, now: end)
        upstreamCounters?.figures.subtract(.active)
        pipeline.counters.closed(bytesUp: pipes[.up].written, bytesDown: pipes[.down].written)
        gate.leave()
        pipeline.registry.remove(id)
        pipeline.leave()  // last: a retired runtime may destroy its stages now
        if pipeline.logger.logLevel <= .debug {
            pipeline.logger.debug("connection closed", metadata: [
                "connection": "\(id)", "cause": "\(ABINames.closeCause(cause))",
                "bytes_up": "\(pipes[.up].written)", "bytes_down": "\(pipes[.down].written)",
            ])
        }
        pipes[.up].held = nil
        pipes[.down].held = nil
        client = nil
        upstream = nil
    }

    // MARK: deadlines and posts

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

    var inHandshake: Bool { state == .opening && pipeline.tls.server != nil }

    /// The deadline in force: the admission's, the handshake's, or the idle timeout's
    /// (`UInt64.max`: none).
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
