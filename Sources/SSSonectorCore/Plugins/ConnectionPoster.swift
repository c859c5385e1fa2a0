/// Where `conn_post_close` and `conn_post_resume` go: the proxy's table of live connections.
/// Implementations post the request to the connection's event loop and return at once.
public protocol ConnectionPoster: AnyObject, Sendable {
    /// Returns false when no such connection is open.
    func postClose(connectionID: UInt64, reasonCode: UInt32) -> Bool
    /// Returns false when no such connection is open.
    func postResume(connectionID: UInt64, direction: UInt32) -> Bool
    /// Returns false when no such connection is open. Whether the verdict still applies (the
    /// connection waits for that stage) is decided on the connection's loop.
    func postVerdict(connectionID: UInt64, _ verdict: PostedVerdict) -> Bool
}

/// An open verdict a stage posted for a connection it left pending (ABI 1.3).
public struct PostedVerdict: Sendable, Equatable {
    /// The posting stage instance's services (`ObjectIdentifier` of its `HostServices`): only
    /// the stage the connection waits for may settle it.
    public let stage: ObjectIdentifier
    /// `SSS_ACCEPT` or `SSS_REJECT`.
    public let verdict: UInt32
    public let reasonCode: UInt32
    public let text: String
}
