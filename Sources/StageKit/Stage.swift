import ConfigValues

/// A stage written in Swift. Implement `init(setup:)` and conform to the hook protocols for the
/// events you need (`OpenHook`, `DataHook`, ...): the events the host sends are derived from
/// those conformances, so a stage without `DataHook` costs nothing per chunk.
///
/// Threading: hooks of one connection run on its event loop, never concurrently; different
/// connections call the same stage concurrently from every loop. Keep instance state
/// thread-safe (`Mutex`, `Atomic`, or sharded by `StageConnection.threadIndex`). Hooks never
/// block. `tick`, `stats` and `control` run on the host's control thread.
public protocol Stage: AnyObject, Sendable {
    /// The stage type's name, as a pipeline's `"type"` names it.
    static var typeName: String { get }
    /// One line for `sssonector plugin info`.
    static var summary: String { get }
    /// Creates an instance from its config. Throw `ConfigError` (with the key's path) or any
    /// error: its description becomes the error the operator sees under the stage's path.
    init(setup: StageSetup) throws
    /// How often `tick` runs, in milliseconds (0: never). Read once after `init`.
    var tickIntervalMilliseconds: UInt32 { get }
    /// Events to leave out for this instance (for example data events when a limit is off).
    var disabledEvents: StageEventSet { get }
}

extension Stage {
    public static var summary: String { "" }
    public var tickIntervalMilliseconds: UInt32 { 0 }
    public var disabledEvents: StageEventSet { [] }
}

/// Accepts or rejects each new connection; may keep per-connection state in
/// `connection.state`.
public protocol OpenHook: Stage {
    func open(_ connection: StageConnection) -> OpenVerdict
}

/// Removes upstreams from the eligible set (a breaker removes open circuits).
public protocol UpstreamFilterHook: Stage {
    func filterUpstreams(_ connection: StageConnection, _ upstreams: UpstreamList, eligible: inout EligibleUpstreams)
}

/// Tells the host which upstreams are unhealthy or paused (ABI 1.2): the host shows it as
/// `healthy` in `/stats` and refills its warm pool only for upstreams no stage flags. Runs on
/// any thread (the control thread and the event loops), concurrently with connection hooks.
public protocol UpstreamStatusHook: Stage {
    func upstreamStatus(_ upstreams: UpstreamList, now: UInt64, report: inout UpstreamStatusReport)
}

/// Chooses the upstream among the eligible ones (a balancer).
public protocol UpstreamSelectHook: Stage {
    func selectUpstream(_ connection: StageConnection, _ upstreams: UpstreamList, eligible: EligibleUpstreams) -> UpstreamSelection
}

/// Hears the outcome of every connect attempt; after a failure may advise a retry policy.
public protocol UpstreamResultHook: Stage {
    func upstreamResult(_ connection: StageConnection, _ result: ConnectResult) -> RetryAdvice
}

/// Sees bytes pass in the directions of `dataDirections`, and may hold them back.
public protocol DataHook: Stage {
    /// Directions to observe (default: both).
    static var dataDirections: DataDirections { get }
    /// Whether to receive read-only views of the bytes (default: false; counts only).
    static var wantsPayload: Bool { get }
    func data(_ connection: StageConnection, _ offer: DataOffer) -> DataDecision
}

extension DataHook {
    public static var dataDirections: DataDirections { .both }
    public static var wantsPayload: Bool { false }
}

/// Told once when a connection that entered the stage closes, with its totals.
public protocol CloseHook: Stage {
    func close(_ connection: StageConnection, _ summary: CloseSummary)
}

/// Runs every `tickIntervalMilliseconds` on the control thread.
public protocol TickHook: Stage {
    func tick(now: UInt64)
}

/// Reports the stage's figures as JSON (`/stats`).
public protocol StatsHook: Stage {
    func stats() -> JSONValue
}

/// Answers JSON commands (admin `POST .../control`).
public protocol ControlHook: Stage {
    func control(_ command: JSONValue) -> ControlAnswer
}

/// What a control command answers.
public enum ControlAnswer: Sendable {
    case ok(JSONValue)
    /// A bad command: the message goes back as `{"error": message}`.
    case badCommand(String)
}
