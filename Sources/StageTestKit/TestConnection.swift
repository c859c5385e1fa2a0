import SSSonectorCore
import StageABI

/// One connection through the stage under test, driven hook by hook in the host's order:
/// `open`, then `chooseUpstream` and `reportConnect` per attempt, then `offer` per direction,
/// and `close` (called at the end of the test if you do not).
public final class TestConnection {
    /// What the open hooks decided.
    public enum OpenResult: Equatable {
        case accepted
        /// Rejected with the reason's stable name (`rate_limited`, `policy`, ...) and text.
        case rejected(reason: String, text: String)
        /// The stage left its verdict pending (ABI 1.3) with this timeout of its own (0: none).
        /// Apply what it posts with `settle`, or let its deadline pass (`clock`, then
        /// `expireIfDue`).
        case pending(timeoutNanoseconds: UInt64)
    }

    /// A direction of bytes.
    public enum Direction { case up, down }

    /// What an offer of bytes was granted.
    public struct Grant: Equatable {
        /// Stream offset up to which the bytes may pass now.
        public var passedUpTo: UInt64
        /// When some were held back: offer again after this many nanoseconds (0: no timer).
        public var retryAfterNanoseconds: UInt64
        /// Set when the stage asked to close the connection (the reason's stable name).
        public var closeReason: String?
    }

    private let stage: StageUnderTest
    private let chain: ConnectionChain
    private var received: [Direction: UInt64] = [:]
    private var chosen: Int?
    private var attempts = 0
    private var closed = false
    /// While pending: when the host would apply the fallback (the stage's own timeout, or the
    /// default `connection.open_timeout` of 1 s).
    private var pendingDeadline: UInt64?
    /// The host's default `connection.open_timeout`.
    public static let openTimeoutNanoseconds: UInt64 = 1_000_000_000

    init(stage: StageUnderTest, id: UInt64, peer: sss_addr, threadIndex: Int) {
        self.stage = stage
        chain = ConnectionChain(chain: stage.chain, id: id, threadIndex: threadIndex, peer: peer, local: sss_addr(),
                                acceptedAt: stage.clock.monotonicNanoseconds())
    }

    deinit { close() }

    /// The connection's id, as the stage sees it.
    public var id: UInt64 { chain.id }

    /// Runs the open hook.
    public func open() -> OpenResult {
        result(of: chain.open(now: stage.clock.monotonicNanoseconds()))
    }

    /// Applies the verdict the stage posted for this connection (`StageHost.postVerdict`), as
    /// the host does on the connection's loop; waits up to `seconds` for the stage to post it
    /// (a stage may post from its own thread). Nil when nothing was posted, or when the
    /// connection no longer waits (the host drops such a verdict).
    public func settle(waitingUpTo seconds: Double = 0) -> OpenResult? {
        guard let posted = stage.posts.takeVerdict(for: id, waitingUpTo: seconds) else { return nil }
        return chain.settle(posted, now: stage.clock.monotonicNanoseconds()).map(result)
    }

    /// When the clock has reached the pending deadline, applies the stage's fallback as the
    /// host's timer would; nil otherwise.
    public func expireIfDue() -> OpenResult? {
        guard let deadline = pendingDeadline, stage.clock.monotonicNanoseconds() >= deadline else { return nil }
        return chain.settleWithFallback(now: stage.clock.monotonicNanoseconds()).map(result)
    }

    private func result(of outcome: ConnectionChain.OpenOutcome) -> OpenResult {
        pendingDeadline = nil
        switch outcome {
        case .accepted: return .accepted
        case .rejected(_, let code, let text): return .rejected(reason: ABINames.reason(code), text: text)
        case .pending(_, let timeout):
            let now = stage.clock.monotonicNanoseconds()
            let bound = now + Self.openTimeoutNanoseconds
            pendingDeadline = timeout == 0 ? bound : min(bound, now + timeout)
            return .pending(timeoutNanoseconds: timeout)
        }
    }

    /// Runs the filter and select hooks; the upstream the host would connect to (by name), or
    /// nil when none is eligible or the stage rejected.
    public func chooseUpstream() -> String? {
        switch chain.choose(from: stage.table.current, tried: [], now: stage.clock.monotonicNanoseconds()) {
        case .upstream(let index):
            chosen = index
            return stage.upstreamNames[index]
        case .noUpstream, .rejected:
            return nil
        }
    }

    /// Reports the connect attempt to the chosen upstream: `nil` for success, else the outcome's
    /// stable name (`refused`, `timeout`, ...). Returns the retry advice: nil for no opinion, else
    /// the delay in nanoseconds, or `.max` for give up. `pooled`: the host's warm pool served it.
    @discardableResult
    public func reportConnect(failure outcome: String? = nil, latencyNanoseconds: UInt64 = 1_000_000, pooled: Bool = false) -> UInt64? {
        guard let index = chosen else { return nil }
        attempts += 1
        let snapshot = stage.table.current
        chain.beginAttempt(upstream: index, in: snapshot, attempt: attempts)
        let code = outcome.map(Self.outcomeCode) ?? SSS_CONNECT_OK
        let decision = chain.report(outcome: code, upstream: index, in: snapshot, attempt: attempts, osErrno: 0,
                                    latency: latencyNanoseconds, remainingUntried: max(0, snapshot.count - attempts),
                                    now: stage.clock.monotonicNanoseconds(), pooled: pooled)
        switch decision.action {
        case SSS_RETRY_AFTER: return decision.retry_after_ns
        case SSS_RETRY_GIVE_UP: return .max
        default: return nil
        }
    }

    /// Offers `count` more bytes in `direction` (the stream so far, as the relay would) and
    /// returns what the stage granted. `endOfStream` marks the sender's half-close.
    public func offer(_ direction: Direction, bytes count: UInt64, endOfStream: Bool = false, reoffer: Bool = false) -> Grant {
        let total = received[direction, default: 0] + count
        received[direction] = total
        let grant = chain.offer(direction: direction == .up ? SSS_DIR_UP : SSS_DIR_DOWN, received: total,
                                eof: endOfStream, buffered: total, now: stage.clock.monotonicNanoseconds(), reoffer: reoffer)
        return Grant(passedUpTo: grant.releasedUpTo, retryAfterNanoseconds: grant.retryAfter,
                     closeReason: grant.closeReason.map(ABINames.reason))
    }

    /// Closes the connection (the close hook runs once; later calls do nothing).
    public func close(cause: String = "client_eof") {
        guard !closed else { return }
        closed = true
        var info = ConnectionChain.CloseInfo(cause: cause == "client_eof" ? SSS_CLOSE_CLIENT_EOF : SSS_CLOSE_ERROR)
        info.bytesUp = received[.up, default: 0]
        info.bytesDown = received[.down, default: 0]
        info.attempts = attempts
        info.upstreamIndex = chosen ?? -1
        chain.close(info, now: stage.clock.monotonicNanoseconds())
    }

    static func outcomeCode(_ name: String) -> UInt32 {
        for code in UInt32(0)...UInt32(16) where ABINames.connectOutcome(code) == name { return code }
        return SSS_CONNECT_REFUSED
    }
}
