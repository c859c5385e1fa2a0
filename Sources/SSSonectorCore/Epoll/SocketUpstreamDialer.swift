import NIOCore

/// The epoll data path's dialer: a non-blocking `connect` on the session's `EpollLoop`, the
/// socket then relayed as a `SocketEndpoint`. Only IP addresses: a pipeline that needs more
/// (names, TLS, the pool, the reverse tunnel) runs on SwiftNIO (`PipelineConfig.needsSwiftNIO`);
/// an upstream added at run time with a host name fails to connect, as unreachable.
struct SocketUpstreamDialer: UpstreamDialing {
    func dial(_ entry: UpstreamEntry, for session: ProxySession,
              completion: @escaping (Result<DialedUpstream, Error>) -> Void) -> UpstreamAttempt? {
        guard let loop = session.loop as? EpollLoop else {
            completion(.failure(UpstreamAddressError(message: "the epoll data path runs on its own loops")))
            return nil
        }
        guard case .literal(let address) = session.pipeline.target(for: entry) else {
            completion(.failure(UpstreamAddressError(
                message: "\(entry.address): the epoll data path connects to IP addresses only")))
            return nil
        }
        return SocketEndpoint.connect(to: address, for: session, on: loop, completion: completion)
    }
}
