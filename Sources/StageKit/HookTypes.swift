import StageABI

/// A set of ABI events, for `Stage.disabledEvents`.
public struct StageEventSet: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let open = StageEventSet(rawValue: SSS_EV_OPEN)
    public static let filterUpstreams = StageEventSet(rawValue: SSS_EV_FILTER_UPSTREAMS)
    public static let selectUpstream = StageEventSet(rawValue: SSS_EV_SELECT_UPSTREAM)
    public static let upstreamResult = StageEventSet(rawValue: SSS_EV_UPSTREAM_RESULT)
    public static let dataUp = StageEventSet(rawValue: SSS_EV_DATA_UP)
    public static let dataDown = StageEventSet(rawValue: SSS_EV_DATA_DOWN)
    public static let data: StageEventSet = [.dataUp, .dataDown, StageEventSet(rawValue: SSS_EV_DATA_SLICES)]
    public static let close = StageEventSet(rawValue: SSS_EV_CLOSE)
    public static let tick = StageEventSet(rawValue: SSS_EV_TICK)
    public static let stats = StageEventSet(rawValue: SSS_EV_STATS)
    public static let control = StageEventSet(rawValue: SSS_EV_CONTROL)
}

/// Directions of the byte stream.
public struct DataDirections: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Client to upstream.
    public static let up = DataDirections(rawValue: 1)
    /// Upstream to client.
    public static let down = DataDirections(rawValue: 2)
    public static let both: DataDirections = [.up, .down]
}

/// Reason codes of the ABI. Their stable names come from the header (`sss_reason_name`), the
/// one list the host, StageKit and every stage share.
public enum StageReason: UInt32, Sendable, CaseIterable {
    case rateLimited = 1, circuitOpen = 2, noUpstream = 3, policy = 4, overload = 5,
         connectFailed = 6, limitReached = 7

    /// The stable name (`rate_limited`, `circuit_open`, ...).
    public var name: String { Self.name(ofCode: rawValue) }

    /// The stable name of any reason code: `custom` for codes from 0x1000, `unknown` for
    /// codes the ABI does not define.
    public static func name(ofCode code: UInt32) -> String { String(cString: sss_reason_name(code)) }
}

/// The verdict of `OpenHook.open`.
public enum OpenVerdict: Sendable {
    case accept
    /// Accept, but skip these events for this connection (cheaper hot path).
    case acceptWithout(StageEventSet)
    case reject(StageReason, String)
    /// A custom reason code (>= 0x1000); its name is the text's first word.
    case rejectCustom(UInt32, String)
    /// The verdict comes later (ABI 1.3): post it with `StageHost.postVerdict` from any
    /// thread. Until then the host reads nothing from the client and connects nothing; after
    /// `timeoutNanoseconds` (0: only the pipeline's `connection.open_timeout`, which always
    /// bounds the wait) it applies `fallback` (`.accept` or a rejection; anything else rejects
    /// with `policy`). On a host older than 1.3 (`StageHost.supportsPendingOpen` false) the
    /// fallback applies at once.
    indirect case pending(timeoutNanoseconds: UInt64, fallback: OpenVerdict)
}

extension OpenVerdict {
    /// The verdict as a final one: a pending fallback (not allowed) is a `policy` rejection.
    var settled: OpenVerdict {
        if case .pending = self { return .reject(.policy, "a pending verdict's fallback was itself pending") }
        return self
    }
}

/// What `UpstreamSelectHook.selectUpstream` answers.
public enum UpstreamSelection: Sendable, Equatable {
    case noOpinion
    case chosen(Int)
    case reject
}

/// What `UpstreamResultHook.upstreamResult` advises after a failure.
public enum RetryAdvice: Sendable, Equatable {
    case noOpinion
    /// Try again after this many nanoseconds (0: at once).
    case retry(afterNanoseconds: UInt64)
    case giveUp
}

/// How a connect attempt ended.
public enum ConnectOutcome: UInt32, Sendable {
    case connected = 0, refused = 1, timeout = 2, unreachable = 3, reset = 4, other = 5
}

/// One connect attempt's outcome.
public struct ConnectResult: Sendable {
    public let outcome: ConnectOutcome
    public let upstreamIndex: Int
    public let upstreamID: UInt64
    /// 1-based.
    public let attempt: Int
    public let osErrno: Int32
    public let latencyNanoseconds: UInt64
    /// Eligible upstreams not yet tried for this connection.
    public let remainingUntried: Int
    /// Served by a connection the host's warm pool opened ahead (ABI 1.2; false from an older
    /// host): `latencyNanoseconds` is the checkout's, not a connect's.
    public let pooled: Bool
    public var succeeded: Bool { outcome == .connected }
}

/// Bytes offered to a `DataHook` in one direction.
public struct DataOffer {
    /// `.up` (client to upstream) or `.down`.
    public let direction: DataDirections
    /// Stream offset of the first byte this stage has not granted yet.
    public let offset: UInt64
    /// Bytes available to grant now.
    public let available: UInt64
    /// Bytes the host holds in this direction.
    public let buffered: UInt64
    /// Monotonic nanoseconds.
    public let now: UInt64
    /// The sender half-closed after these bytes.
    public let endOfStream: Bool
    /// These bytes were held back before and are offered again.
    public let isReoffer: Bool
    let rawSlices: UnsafePointer<sss_slice>?
    let sliceCount: Int

    /// Read-only views of the offered bytes (only with `wantsPayload`); valid during the call.
    public func withPayload<R>(_ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        var views: [UnsafeRawBufferPointer] = []
        for i in 0..<sliceCount {
            if let s = rawSlices?[i] { views.append(UnsafeRawBufferPointer(start: s.ptr, count: Int(s.len))) }
        }
        return body(views)
    }
}

/// A `DataHook`'s answer.
public enum DataDecision: Sendable, Equatable {
    /// Let every offered byte through.
    case passAll
    /// Let `count` bytes through now; offer the rest again after `retryAfterNanoseconds`
    /// (0: when more bytes arrive or on `StageHost.resume`).
    case pass(UInt64, retryAfterNanoseconds: UInt64)
    /// Close the connection with this reason.
    case close(StageReason)
}

/// Why a connection closed.
public enum CloseCause: UInt32, Sendable, CaseIterable {
    case clientEOF = 0, upstreamEOF, clientReset, upstreamReset, rejected, noUpstream,
         connectFailed, idleTimeout, stageClosed, shutdown, error, overload

    /// The stable name (`client_eof`, ...), from the header (`sss_close_cause_name`).
    public var name: String { String(cString: sss_close_cause_name(rawValue)) }
}

/// A closed connection's totals.
public struct CloseSummary: Sendable {
    public let cause: CloseCause
    /// Chain index of the stage that rejected it, if any.
    public let rejectedBy: Int?
    public let rejectedByName: String
    public let reasonCode: UInt32
    public let reasonText: String
    public let upstreamIndex: Int?
    public let upstreamID: UInt64
    public let attempts: Int
    public let bytesUp: UInt64
    public let bytesDown: UInt64
    public let durationNanoseconds: UInt64
    public let connectLatencyNanoseconds: UInt64
    /// The connection closed while this stage's open verdict was pending (ABI 1.3): a verdict
    /// posted for it from now on is dropped.
    public let closedWhilePending: Bool
}
