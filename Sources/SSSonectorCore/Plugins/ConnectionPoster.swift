/// Where `conn_post_close` and `conn_post_resume` go: the proxy's table of live connections.
/// Implementations post the request to the connection's event loop and return at once.
public protocol ConnectionPoster: AnyObject, Sendable {
    /// Returns false when no such connection is open.
    func postClose(connectionID: UInt64, reasonCode: UInt32) -> Bool
    /// Returns false when no such connection is open.
    func postResume(connectionID: UInt64, direction: UInt32) -> Bool
}
