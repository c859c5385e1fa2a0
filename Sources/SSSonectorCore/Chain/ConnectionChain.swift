import CrashReport
import Foundation
import StageABI

/// Runs a pipeline's stage hooks for ONE connection, in life-cycle order (docs/architecture.md, ABI
/// threading rules): open verdicts, upstream filter and selection, connect results with the
/// stages' retry opinions, data grants per stage and direction, and close exactly once per
/// entered stage. Independent of SwiftNIO: the relay drives it, and tests drive it directly.
///
/// Not thread-safe: confine it to the connection's event loop.
public final class ConnectionChain {
    public let chain: StageChain
    private let hooks: ContiguousArray<StageHooks>
    /// The one allocation the tables below live in (`ConnectionArenaLayout`).
    private let arena: UnsafeMutableRawPointer
    private let conn: UnsafeMutablePointer<sss_conn>
    private let peerIP: UnsafeMutablePointer<CChar>
    private let slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    // Per-connection tables live in manual memory, not in Swift arrays: arrays stored
    // in a class pay a dynamic exclusivity check on every mutation, and this is the per-chunk
    // path.
    /// Per-stage events for this connection (narrowed by on_open).
    private let connectionEvents: UnsafeMutablePointer<UInt64>
    /// Per-stage, per-direction stream offset each stage has granted up to.
    private let granted: UnsafeMutablePointer<UInt64>
    /// Number of stages the connection entered (on_open reached them).
    public private(set) var entered = 0
    public private(set) var isClosed = false
    /// Whether any entered stage wants data events in each direction.
    public private(set) var inspectsUp = false
    public private(set) var inspectsDown = false
    /// Whether any entered stage asked for payload slices (otherwise none are built).
    public private(set) var wantsSlices = false
    /// Per-stage, per-direction: the stage has been told about EOF.
    private let eofOffered: UnsafeMutablePointer<Bool>
    /// The upstream set's header as stages see it; during `choose` its items point at that
    /// call's copy of the set (live `active` figures), and at nothing otherwise.
    private let upstreamSet: UnsafeMutablePointer<sss_upstream_set>

    /// How `open` ended.
    public enum OpenOutcome: Equatable {
        case accepted
        case rejected(stage: Int, reasonCode: UInt32, text: String)
        /// Stage `stage` left its verdict pending (ABI 1.3): wait for it (`settle`) at most
        /// `timeout` nanoseconds (0: the stage set none; the pipeline's open timeout holds),
        /// then apply its fallback (`settleWithFallback`).
        case pending(stage: Int, timeout: UInt64)
    }

    /// The stage whose verdict the connection waits for, and what applies if it never comes.
    private struct PendingOpen {
        let stage: Int
        let fallback: UInt32
        let fallbackReason: UInt32
        let fallbackText: String
    }
    private var pendingOpen: PendingOpen?
    /// The stage the connection waits for (nil: none).
    public var pendingStage: Int? { pendingOpen?.stage }

    /// What `choose` decided.
    public enum Choice: Equatable {
        case upstream(index: Int)
        case noUpstream
        case rejected(stage: Int)
    }

    /// A connection from `peer`; stages see its IP as text in `sss_conn.peer_ip`.
    public init(chain: StageChain, id: UInt64, threadIndex: Int, peer: sss_addr, local: sss_addr,
                acceptedAt: UInt64) {
        self.chain = chain
        self.hooks = chain.hooks
        // One allocation holds every per-connection table (it was seven): fewer mallocs per
        // accepted connection and less memory per idle one.
        let layout = ConnectionArenaLayout(stages: chain.hooks.count)
        let arena = UnsafeMutableRawPointer.allocate(byteCount: layout.byteCount, alignment: 8)
        self.arena = arena
        self.conn = (arena + layout.conn).bindMemory(to: sss_conn.self, capacity: 1)
        self.upstreamSet = (arena + layout.upstreamSet).bindMemory(to: sss_upstream_set.self, capacity: 1)
        upstreamSet.initialize(to: sss_upstream_set())
        self.slots = (arena + layout.slots).bindMemory(to: UnsafeMutableRawPointer?.self, capacity: layout.perStage)
        slots.initialize(repeating: nil, count: layout.perStage)
        self.connectionEvents = (arena + layout.connectionEvents).bindMemory(to: UInt64.self, capacity: layout.perStage)
        for (i, h) in chain.hooks.enumerated() { (connectionEvents + i).initialize(to: h.events) }
        self.granted = (arena + layout.granted).bindMemory(to: UInt64.self, capacity: layout.perDirection)
        granted.initialize(repeating: 0, count: layout.perDirection)
        self.eofOffered = (arena + layout.eofOffered).bindMemory(to: Bool.self, capacity: layout.perDirection)
        eofOffered.initialize(repeating: false, count: layout.perDirection)
        self.peerIP = (arena + layout.peerIP).bindMemory(to: CChar.self, capacity: Self.ipTextCapacity)
        let peerIPLength = Self.formatIP(peer, into: self.peerIP)
        conn.initialize(to: sss_conn(
            struct_size: UInt32(MemoryLayout<sss_conn>.size), thread_index: UInt32(threadIndex),
            id: id, peer: peer, local: local,
            peer_ip: sss_str(ptr: self.peerIP, len: UInt64(peerIPLength)),
            pipeline: sss_str(ptr: chain.pipelineName, len: UInt64(chain.pipelineNameLength)),
            listener: sss_str(ptr: chain.listenerText, len: UInt64(chain.listenerTextLength)),
            accepted_ns: acceptedAt, now_ns: acceptedAt, upstream_index: -1, attempt: 0,
            upstream_id: 0, peer_identity: sss_str(ptr: nil, len: 0)))
    }

    private var peerIdentity: UnsafeMutablePointer<CChar>?

    /// Sets the verified client certificate identity stages see (ABI 1.1), before `open`.
    public func setPeerIdentity(_ identity: String) {
        free(peerIdentity)
        peerIdentity = strdup(identity)
        conn.pointee.peer_identity = sss_str(ptr: peerIdentity, len: UInt64(identity.utf8.count))
    }

    deinit {
        // Every entered stage must hear of the close; a chain dropped without one is a host bug.
        assert(isClosed || entered == 0, "a connection chain was dropped without close")
        if !isClosed && entered > 0 { close(CloseInfo(cause: SSS_CLOSE_ERROR), now: conn.pointee.now_ns) }
        arena.deallocate()
        free(peerIdentity)
    }

    /// The connection's id.
    public var id: UInt64 { conn.pointee.id }
    /// Monotonic nanoseconds at accept.
    public var acceptedAt: UInt64 { conn.pointee.accepted_ns }
    /// The client's IP as text, as stages see it in `sss_conn.peer_ip`.
    public var peerIPText: String { String(cString: peerIP) }

    // MARK: open

    /// Calls on_open of each stage in order until one rejects or leaves its verdict pending. A
    /// stage is entered when the chain reaches it (whether or not it asked for the open event);
    /// later stages never see a rejected connection.
    public func open(now: UInt64) -> OpenOutcome {
        runOpen(from: 0, now: now)
    }

    /// Applies the verdict the pending stage posted, then goes on with the stages after it.
    /// Returns nil (and changes nothing) when the connection waits for no verdict, or for
    /// another stage's: the caller counts it as late.
    public func settle(_ posted: PostedVerdict, now: UInt64) -> OpenOutcome? {
        guard let pending = pendingOpen, hooks[pending.stage].servicesID == posted.stage, !isClosed else { return nil }
        pendingOpen = nil
        return verdictApplied(posted.verdict, reasonCode: posted.reasonCode, text: posted.text, stage: pending.stage, now: now)
    }

    /// The wait for the pending stage timed out: applies the fallback it declared.
    public func settleWithFallback(now: UInt64) -> OpenOutcome? {
        guard let pending = pendingOpen, !isClosed else { return nil }
        pendingOpen = nil
        return verdictApplied(pending.fallback, reasonCode: pending.fallbackReason, text: pending.fallbackText,
                              stage: pending.stage, now: now)
    }

    private func verdictApplied(_ verdict: UInt32, reasonCode: UInt32, text: String, stage: Int, now: UInt64) -> OpenOutcome {
        guard verdict == SSS_ACCEPT else {
            let code = reasonCode == SSS_REASON_NONE ? SSS_REASON_POLICY : chain.checkedReason(reasonCode, stage: stage)
            return .rejected(stage: stage, reasonCode: code, text: text)
        }
        return runOpen(from: stage + 1, now: now)
    }

    private func runOpen(from first: Int, now: UInt64) -> OpenOutcome {
        conn.pointee.now_ns = now
        var reason = [CChar](repeating: 0, count: 256)
        for i in first..<hooks.count {
            entered = i + 1
            let h = hooks[i]
            guard h.events & SSS_EV_OPEN != 0, let onOpen = h.onOpen else { continue }
            var result = sss_open_result(
                struct_size: UInt32(MemoryLayout<sss_open_result>.size), reason_code: 0,
                events: h.events, reason_buf: nil, reason_cap: 0,
                pending_timeout_ns: 0, fallback_verdict: SSS_REJECT, fallback_reason_code: SSS_REASON_NONE)
            let verdict = reason.withUnsafeMutableBufferPointer { buf in
                result.reason_buf = buf.baseAddress
                result.reason_cap = UInt64(buf.count)
                sss_hook_enter(h.name, UInt32(SSS_HOOK_OPEN))
                defer { sss_hook_leave() }
                return onOpen(h.inst, conn, slots + i, &result)
            }
            // A connection may only narrow what the instance asked for.
            connectionEvents[i] = h.events & result.events
            if verdict == SSS_ACCEPT { continue }
            if verdict == SSS_PENDING && h.mayPend {
                // The fallback's text is what the stage wrote into reason_buf.
                let fallbackOK = result.fallback_verdict == SSS_ACCEPT || result.fallback_verdict == SSS_REJECT
                if !fallbackOK {
                    chain.fault(i, kind: "fallback verdict", "pending open with fallback verdict \(result.fallback_verdict), which is neither ACCEPT nor REJECT; it falls back to a rejection (policy)")
                }
                pendingOpen = PendingOpen(stage: i, fallback: fallbackOK ? result.fallback_verdict : SSS_REJECT,
                                          fallbackReason: fallbackOK ? result.fallback_reason_code : SSS_REASON_POLICY,
                                          fallbackText: String(nulTerminated: reason))
                return .pending(stage: i, timeout: result.pending_timeout_ns)
            }
            // Anything else fails closed: a verdict outside the ABI (or PENDING from a
            // library built before 1.3) is a rejection.
            if verdict != SSS_REJECT {
                chain.fault(i, kind: "open verdict", "open verdict \(verdict) is outside the ABI; the connection is rejected (policy)")
            }
            let code = result.reason_code == SSS_REASON_NONE || verdict != SSS_REJECT ? SSS_REASON_POLICY
                : chain.checkedReason(result.reason_code, stage: i)
            return .rejected(stage: i, reasonCode: code, text: String(nulTerminated: reason))
        }
        let events = UnsafeBufferPointer(start: connectionEvents, count: hooks.count)
        inspectsUp = events.contains { $0 & SSS_EV_DATA_UP != 0 }
        inspectsDown = events.contains { $0 & SSS_EV_DATA_DOWN != 0 }
        wantsSlices = events.contains { $0 & SSS_EV_DATA_SLICES != 0 }
        return .accepted
    }

    // MARK: upstreams

    /// Filters the eligible set through the stages, then lets selecting stages choose; without
    /// a choice the host takes the next eligible upstream round robin. Upstreams in `tried`
    /// (ids) are skipped while any eligible upstream remains untried.
    public func choose(from snapshot: UpstreamSnapshot, tried: Set<UInt64>, now: UInt64) -> Choice {
        let count = snapshot.count
        guard count > 0 else { return .noUpstream }
        // The stages' view of the set and the eligibility flags live for this call only, on the
        // stack for any usual count: nothing is allocated for them, and nothing stays allocated
        // for an idle connection (its memory is a target: benchmarks/README.md).
        return withUnsafeTemporaryAllocation(of: sss_upstream.self, capacity: count) { items in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { eligible in
                let base = items.baseAddress!
                base.initialize(repeating: sss_upstream(), count: count)
                snapshot.fillView(items: base, set: upstreamSet)
                defer { upstreamSet.pointee.items = nil }  // the view ends with the call
                for (i, entry) in snapshot.entries.enumerated() { eligible[i] = entry.draining ? 0 : 1 }
                return choose(from: snapshot, tried: tried, now: now, set: UnsafePointer(upstreamSet), eligible: eligible)
            }
        }
    }

    private func choose(from snapshot: UpstreamSnapshot, tried: Set<UInt64>, now: UInt64,
                        set: UnsafePointer<sss_upstream_set>, eligible: UnsafeMutableBufferPointer<UInt8>) -> Choice {
        let count = snapshot.count
        conn.pointee.now_ns = now
        for i in 0..<entered where connectionEvents[i] & SSS_EV_FILTER_UPSTREAMS != 0 {
            let h = hooks[i]
            sss_hook_enter(h.name, UInt32(SSS_HOOK_FILTER))
            h.onFilter?(h.inst, conn, slots + i, set, eligible.baseAddress)
            sss_hook_leave()
        }
        if !tried.isEmpty {
            let untried = (0..<count).contains { eligible[$0] != 0 && !tried.contains(snapshot.entries[$0].id) }
            if untried {
                for i in 0..<count where tried.contains(snapshot.entries[i].id) { eligible[i] = 0 }
            }
        }
        let eligibleCount = eligible.reduce(0) { $0 + Int($1 != 0 ? 1 : 0) }
        guard eligibleCount > 0 else { return .noUpstream }
        for i in 0..<entered where connectionEvents[i] & SSS_EV_SELECT_UPSTREAM != 0 {
            let h = hooks[i]
            var index: UInt32 = UInt32.max
            sss_hook_enter(h.name, UInt32(SSS_HOOK_SELECT))
            let answer = h.onSelect?(h.inst, conn, slots + i, set, UnsafePointer(eligible.baseAddress), &index) ?? SSS_SELECT_NO_OPINION
            sss_hook_leave()
            if answer == SSS_SELECT_REJECT { return .rejected(stage: i) }
            if answer == SSS_SELECT_CHOSEN, Int(index) < count, eligible[Int(index)] != 0 {
                return .upstream(index: Int(index))
            }
        }
        var nth = Int(chain.roundRobin.take() % UInt64(eligibleCount))
        for i in 0..<count where eligible[i] != 0 {
            if nth == 0 { return .upstream(index: i) }
            nth -= 1
        }
        return .noUpstream
    }

    /// Records the upstream about to be tried (index in `snapshot`) and the attempt number.
    public func beginAttempt(upstream index: Int, in snapshot: UpstreamSnapshot, attempt: Int) {
        conn.pointee.upstream_index = Int32(index)
        conn.pointee.upstream_id = snapshot.entries[index].id
        conn.pointee.attempt = UInt32(attempt)
    }

    /// Reports one connect attempt to every stage that wants results; returns the first
    /// opinion in chain order (NO_OPINION when none, and always after a success).
    public func report(outcome: UInt32, upstream index: Int, in snapshot: UpstreamSnapshot,
                       attempt: Int, osErrno: Int32, latency: UInt64, remainingUntried: Int,
                       now: UInt64, pooled: Bool = false) -> sss_retry_decision {
        conn.pointee.now_ns = now
        var result = sss_upstream_result(
            struct_size: UInt32(MemoryLayout<sss_upstream_result>.size), outcome: outcome,
            upstream_index: UInt32(index), attempt: UInt32(attempt),
            upstream_id: snapshot.entries[index].id, os_errno: osErrno,
            remaining_untried: UInt32(remainingUntried), latency_ns: latency,
            flags: pooled ? SSS_RESULT_POOLED : 0, reserved: 0)
        var first = sss_retry_decision(struct_size: UInt32(MemoryLayout<sss_retry_decision>.size),
                                       action: SSS_RETRY_NO_OPINION, retry_after_ns: 0)
        for i in 0..<entered where connectionEvents[i] & SSS_EV_UPSTREAM_RESULT != 0 {
            let h = hooks[i]
            var decision = sss_retry_decision(struct_size: UInt32(MemoryLayout<sss_retry_decision>.size),
                                              action: SSS_RETRY_NO_OPINION, retry_after_ns: 0)
            sss_hook_enter(h.name, UInt32(SSS_HOOK_RESULT))
            h.onResult?(h.inst, conn, slots + i, &result, &decision)
            sss_hook_leave()
            if decision.action == SSS_RETRY_AFTER, decision.retry_after_ns > StageChain.maximumDelay {
                chain.fault(i, kind: "retry delay", "retry_after_ns \(decision.retry_after_ns) is above 60s; clamped to 60s")
                decision.retry_after_ns = StageChain.maximumDelay
            }
            if first.action == SSS_RETRY_NO_OPINION, outcome != SSS_CONNECT_OK,
               decision.action == SSS_RETRY_AFTER || decision.action == SSS_RETRY_GIVE_UP {
                first = decision
            }
        }
        return first
    }

    // MARK: data

    /// The result of offering bytes in one direction.
    public struct Grant: Equatable {
        /// Stream offset up to which every stage has granted: the relay may write up to here.
        public var releasedUpTo: UInt64
        /// When > 0, offer again after this many nanoseconds (the smallest a stage asked for).
        public var retryAfter: UInt64
        /// Set when a stage asked to close the connection (its reason code).
        public var closeReason: UInt32?
    }

    /// Offers the bytes of `direction` received so far (`received` is the stream offset after
    /// the last byte read) to each entered data stage in order. Stage k sees only what stage
    /// k-1 granted and it has not; each stage counts each byte once.
    /// `slices` gives read-only views of held stream bytes, only to stages that asked for them.
    public func offer<Slices: DataSliceSource>(
        direction: UInt32, received: UInt64, eof: Bool, buffered: UInt64, now: UInt64,
        reoffer: Bool, slices: Slices
    ) -> Grant {
        let bit = direction == SSS_DIR_UP ? SSS_EV_DATA_UP : SSS_EV_DATA_DOWN
        var upTo = received
        var retry: UInt64 = 0
        conn.pointee.now_ns = now
        for i in 0..<entered where connectionEvents[i] & bit != 0 {
            let slot = i * 2 + Int(direction)
            let offset = granted[slot]
            let avail = upTo &- offset
            // The EOF flag rides on the call with the final bytes, or on one call of its own.
            let tellEOF = eof && !eofOffered[slot]
            if avail == 0 && !tellEOF { upTo = offset; continue }
            let h = hooks[i]
            var args = sss_data_args(
                struct_size: UInt32(MemoryLayout<sss_data_args>.size), dir: direction,
                offset: offset, avail: avail, buffered: buffered, now_ns: now,
                flags: (eof ? SSS_DATA_EOF : 0) | (reoffer ? SSS_DATA_REOFFER : 0),
                slice_count: 0, slices: nil)
            var out = sss_data_result(struct_size: UInt32(MemoryLayout<sss_data_result>.size),
                                      close_reason: 0, granted: avail, retry_after_ns: 0)
            let verdict: UInt32
            sss_hook_enter(h.name, UInt32(SSS_HOOK_DATA))
            if connectionEvents[i] & SSS_EV_DATA_SLICES != 0, avail > 0 {
                let slot = slots + i
                let conn = self.conn
                verdict = slices.withSlices(offset: offset, count: avail) { buf in
                    args.slice_count = UInt32(buf.count)
                    args.slices = buf.baseAddress
                    return h.onData?(h.inst, conn, slot, &args, &out) ?? SSS_DATA_CONTINUE
                }
            } else {
                verdict = h.onData?(h.inst, conn, slots + i, &args, &out) ?? SSS_DATA_CONTINUE
            }
            sss_hook_leave()
            if verdict == SSS_DATA_CLOSE {
                return Grant(releasedUpTo: upTo, retryAfter: 0, closeReason: chain.checkedReason(out.close_reason, stage: i))
            }
            if verdict != SSS_DATA_CONTINUE {
                chain.fault(i, kind: "data verdict", "data verdict \(verdict) is outside the ABI; taken as continue")
            }
            if out.granted > avail {
                chain.fault(i, kind: "grant", "granted more bytes than offered; clamped to the offer")
            }
            if out.retry_after_ns > StageChain.maximumDelay {
                chain.fault(i, kind: "data delay", "data retry_after_ns \(out.retry_after_ns) is above 60s; clamped to 60s")
                out.retry_after_ns = StageChain.maximumDelay
            }
            let given = min(out.granted, avail)
            granted[slot] = offset + given
            if tellEOF && given == avail { eofOffered[slot] = true }
            if given < avail, out.retry_after_ns > 0 {
                retry = retry == 0 ? out.retry_after_ns : min(retry, out.retry_after_ns)
            }
            upTo = offset + given
        }
        return Grant(releasedUpTo: upTo, retryAfter: retry, closeReason: nil)
    }

    /// Offers bytes with no slice source (no stage in the chain asks for payload views).
    public func offer(direction: UInt32, received: UInt64, eof: Bool, buffered: UInt64, now: UInt64,
                      reoffer: Bool) -> Grant {
        offer(direction: direction, received: received, eof: eof, buffered: buffered, now: now,
              reoffer: reoffer, slices: NoDataSlices())
    }

    // MARK: close

    /// What the close hook reports; filled by the relay.
    public struct CloseInfo {
        public var cause: UInt32
        public var rejectedBy: Int = -1
        public var reasonCode: UInt32 = SSS_REASON_NONE
        public var reasonText: String = ""
        public var upstreamIndex: Int = -1
        public var upstreamID: UInt64 = 0
        public var attempts: Int = 0
        public var bytesUp: UInt64 = 0
        public var bytesDown: UInt64 = 0
        public var duration: UInt64 = 0
        public var connectLatency: UInt64 = 0

        public init(cause: UInt32) { self.cause = cause }
    }

    /// Calls on_close once for every entered stage that wants it, then frees nothing of the
    /// stages' (their slots are theirs). Later calls do nothing.
    public func close(_ info: CloseInfo, now: UInt64) {
        guard !isClosed else { return }
        isClosed = true
        conn.pointee.now_ns = now
        let rejectedName = info.rejectedBy >= 0 && info.rejectedBy < chain.stages.count
            ? chain.stages[info.rejectedBy].name : ""
        rejectedName.withSSSString { name in
            info.reasonText.withSSSString { text in
                var ci = sss_close_info(
                    struct_size: UInt32(MemoryLayout<sss_close_info>.size), cause: info.cause,
                    rejected_by: Int32(info.rejectedBy), reason_code: info.reasonCode,
                    rejected_by_name: name, reason_text: text,
                    upstream_index: Int32(info.upstreamIndex), attempts: UInt32(info.attempts),
                    upstream_id: info.upstreamID, bytes_up: info.bytesUp, bytes_down: info.bytesDown,
                    duration_ns: info.duration, connect_latency_ns: info.connectLatency,
                    flags: 0, reserved: 0)
                let waitingFor = pendingOpen?.stage
                pendingOpen = nil  // a verdict posted from now on finds nothing to settle
                for i in 0..<entered where connectionEvents[i] & SSS_EV_CLOSE != 0 {
                    let h = hooks[i]
                    ci.flags = i == waitingFor ? SSS_CLOSE_WHILE_PENDING : 0
                    sss_hook_enter(h.name, UInt32(SSS_HOOK_CLOSE))
                    h.onClose?(h.inst, conn, slots[i], &ci)
                    sss_hook_leave()
                }
            }
        }
    }
}

/// Read-only views of the bytes a relay holds, for stages that asked for payload slices.
public protocol DataSliceSource {
    /// Calls `body` with slices covering stream bytes [offset, offset + count) in order.
    func withSlices(offset: UInt64, count: UInt64, _ body: (UnsafeBufferPointer<sss_slice>) -> UInt32) -> UInt32
}

/// A slice source with no bytes (tests, and relays whose chain wants none).
public struct NoDataSlices: DataSliceSource {
    public init() {}
    public func withSlices(offset: UInt64, count: UInt64, _ body: (UnsafeBufferPointer<sss_slice>) -> UInt32) -> UInt32 {
        body(UnsafeBufferPointer(start: nil, count: 0))
    }
}

extension ConnectionChain {
    /// Room for the longest IPv6 text form and its NUL (INET6_ADDRSTRLEN).
    static let ipTextCapacity = 46

    /// Writes `address`'s IP as text (NUL-terminated) into `out`, which holds
    /// `ipTextCapacity` bytes; returns its length. Formatting here, once, saves a Swift
    /// `String` per connection.
    static func formatIP(_ address: sss_addr, into out: UnsafeMutablePointer<CChar>) -> Int {
        var bytes = address.addr
        switch UInt32(address.family) {
        case UInt32(SSS_AF_INET):
            return withUnsafeBytes(of: &bytes) { formatIPv4($0, into: out) }
        case UInt32(SSS_AF_INET6):
            guard withUnsafeBytes(of: &bytes, { inet_ntop(AF_INET6, $0.baseAddress, out, socklen_t(ipTextCapacity)) }) != nil else { break }
            return strlen(out)
        default:
            break
        }
        out.initialize(to: 0)
        return 0
    }

    /// Dotted decimal from the address's first four bytes, written digit by digit. glibc's
    /// `inet_ntop` formats IPv4 with `sprintf`: about 1,700 instructions on every accepted
    /// connection (benchmarks/README.md, "The epoll data path"), for four numbers below 256.
    private static func formatIPv4(_ octets: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<CChar>) -> Int {
        var length = 0
        for index in 0..<4 {
            let octet = octets[index]
            if index > 0 {
                out[length] = CChar(UInt8(ascii: "."))
                length += 1
            }
            if octet >= 100 {
                out[length] = CChar(UInt8(ascii: "0") + octet / 100)
                length += 1
            }
            if octet >= 10 {
                out[length] = CChar(UInt8(ascii: "0") + octet / 10 % 10)
                length += 1
            }
            out[length] = CChar(UInt8(ascii: "0") + octet % 10)
            length += 1
        }
        out[length] = 0
        return length
    }
}

/// Where each per-connection table sits in a `ConnectionChain`'s one allocation: the 8-byte
/// aligned tables first, then the byte-sized ones.
struct ConnectionArenaLayout {
    /// Entries of the per-stage tables (at least one, so no table is empty).
    let perStage: Int
    /// Entries of the per-stage-and-direction tables.
    let perDirection: Int
    let conn: Int
    let upstreamSet: Int
    let slots: Int
    let connectionEvents: Int
    let granted: Int
    let eofOffered: Int
    let peerIP: Int
    let byteCount: Int

    init(stages count: Int) {
        func aligned(_ offset: Int) -> Int { (offset + 7) & ~7 }
        perStage = max(count, 1)
        perDirection = max(count * 2, 1)
        conn = 0
        upstreamSet = aligned(conn + MemoryLayout<sss_conn>.stride)
        slots = aligned(upstreamSet + MemoryLayout<sss_upstream_set>.stride)
        connectionEvents = slots + perStage * MemoryLayout<UnsafeMutableRawPointer?>.stride
        granted = connectionEvents + perStage * MemoryLayout<UInt64>.stride
        eofOffered = granted + perDirection * MemoryLayout<UInt64>.stride
        peerIP = eofOffered + perDirection * MemoryLayout<Bool>.stride
        byteCount = peerIP + ConnectionChain.ipTextCapacity
    }
}
