import StageABI

/// The event bits of the ABI with their names, as `plugin info` prints them.
public struct StageEvents: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let open = StageEvents(rawValue: SSS_EV_OPEN)
    public static let filterUpstreams = StageEvents(rawValue: SSS_EV_FILTER_UPSTREAMS)
    public static let selectUpstream = StageEvents(rawValue: SSS_EV_SELECT_UPSTREAM)
    public static let upstreamResult = StageEvents(rawValue: SSS_EV_UPSTREAM_RESULT)
    public static let dataUp = StageEvents(rawValue: SSS_EV_DATA_UP)
    public static let dataDown = StageEvents(rawValue: SSS_EV_DATA_DOWN)
    public static let dataSlices = StageEvents(rawValue: SSS_EV_DATA_SLICES)
    public static let close = StageEvents(rawValue: SSS_EV_CLOSE)
    public static let tick = StageEvents(rawValue: SSS_EV_TICK)
    public static let stats = StageEvents(rawValue: SSS_EV_STATS)
    public static let control = StageEvents(rawValue: SSS_EV_CONTROL)
    /// Since 1.2: the stage reports upstream health (`on_upstream_status`).
    public static let upstreamStatus = StageEvents(rawValue: SSS_EV_UPSTREAM_STATUS)
    /// Every event this host knows (ABI 1.2).
    public static let known = StageEvents(rawValue: SSS_EV_ALL_V1_2)

    static let names: [(StageEvents, String)] = [
        (.open, "open"), (.filterUpstreams, "filter_upstreams"), (.selectUpstream, "select_upstream"),
        (.upstreamResult, "upstream_result"), (.dataUp, "data_up"), (.dataDown, "data_down"),
        (.dataSlices, "data_slices"), (.close, "close"), (.tick, "tick"), (.stats, "stats"),
        (.control, "control"), (.upstreamStatus, "upstream_status"),
    ]

    /// Names of the set bits, in ABI order.
    public var names: [String] { Self.names.filter { contains($0.0) }.map(\.1) }
    public var description: String { names.joined(separator: ",") }
}
