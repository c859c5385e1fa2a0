import NIOCore
import NIOSSL

/// What a successful connect attempt hands the session: the upstream's transport, ready to
/// relay (TCP up, and the TLS handshake done with its certificate checks).
struct DialedUpstream {
    let endpoint: RelayEndpoint
    /// What a warm pool connection received while it waited (a server-speaks-first greeting):
    /// the first bytes down.
    let greeting: ByteBuffer?
    /// A warm pool connection served the attempt.
    let pooled: Bool
    /// The transport's writability when it was handed over.
    let writable: Bool
}

/// One upstream connect attempt in flight.
protocol UpstreamAttempt: AnyObject {
    /// Abandons the attempt (the session ended first): closes what it opened; the completion
    /// is not called. Does nothing once the attempt has completed.
    func cancel()
}

/// How a session reaches an upstream: a warm pool connection, or a new connection (TCP, a
/// TLS handshake, or a stream through the relay's connectors). The unit tests put a fake here.
protocol UpstreamDialing: Sendable {
    /// Starts one attempt to `entry` for `session`. `completion` runs once, on the session's
    /// loop, possibly before `dial` returns (a warm pool hit); the attempt is returned only
    /// while it is in flight.
    func dial(_ entry: UpstreamEntry, for session: ProxySession,
              completion: @escaping (Result<DialedUpstream, Error>) -> Void) -> UpstreamAttempt?
}

/// The production dialer: SwiftNIO channels on the session's event loop.
struct ChannelUpstreamDialer: UpstreamDialing {
    func dial(_ entry: UpstreamEntry, for session: ProxySession,
              completion: @escaping (Result<DialedUpstream, Error>) -> Void) -> UpstreamAttempt? {
        let pipeline = session.pipeline
        if let warm = pipeline.pools.take(entry, loopIndex: session.loopIndex, now: pipeline.clock.monotonicNanoseconds()),
           adopt(warm, of: entry, for: session, completion: completion) {
            return nil
        }
        let attempt = ChannelUpstreamAttempt(loop: session.loop, settings: session.pipeline.config.connection,
                                             clock: pipeline.clock, completion: completion)
        attempt.start(to: pipeline.target(for: entry), tls: pipeline.tls.upstreams[entry.name], for: session)
        return attempt
    }

    /// Relays over a warm pool connection (TCP up, TLS verified ahead): the relay's handler
    /// takes the place of the pool's, and the attempt succeeds at once. False when the pool
    /// handed over no channel (the attempt then connects anew).
    private func adopt(_ warm: WarmConnection, of entry: UpstreamEntry, for session: ProxySession,
                       completion: (Result<DialedUpstream, Error>) -> Void) -> Bool {
        let greeting = warm.greeting
        guard let channel = warm.takeChannel() else { return false }
        let handler = RelaySideHandler(session: session, side: .upstream,
                                       plainSocket: session.pipeline.tls.upstreams[entry.name] == nil)
        do {
            try channel.pipeline.syncOperations.addHandler(handler)
        } catch {
            channel.close(promise: nil)
            completion(.failure(error))
            return true
        }
        completion(.success(DialedUpstream(endpoint: handler, greeting: greeting, pooled: true, writable: channel.isWritable)))
        return true
    }
}

/// A new upstream connection: the TCP connect (or tunnel stream), then, for a TLS upstream,
/// the handshake, which `connect_timeout` bounds as well. Confined to the session's loop.
final class ChannelUpstreamAttempt: UpstreamAttempt {
    private let loop: EventLoop
    private let settings: ConnectionSettings
    private let clock: any HostClock
    private let startedAt: UInt64
    /// Nil once the attempt completed or was cancelled.
    private var completion: ((Result<DialedUpstream, Error>) -> Void)?
    private var channel: Channel?
    private var handler: RelaySideHandler?
    private var awaitsHandshake = false
    private var handshakeDone = false
    private var handshakeTimer: Scheduled<Void>?

    init(loop: EventLoop, settings: ConnectionSettings, clock: any HostClock,
         completion: @escaping (Result<DialedUpstream, Error>) -> Void) {
        self.loop = loop
        self.settings = settings
        self.clock = clock
        self.startedAt = clock.monotonicNanoseconds()
        self.completion = completion
    }

    func start(to target: UpstreamTarget, tls: PipelineTLS.UpstreamTLS?, for session: ProxySession) {
        awaitsHandshake = tls != nil
        let bound = NIOLoopBound(self, eventLoop: loop)
        let sessionBound = NIOLoopBound(session, eventLoop: loop)
        UpstreamConnector.connect(to: target, on: loop, settings: settings, relay: session.pipeline.relayHub,
                                  client: session.peer) { channel in
            let attempt = bound.value
            if let tls {
                try channel.pipeline.syncOperations.addHandler(
                    try NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverName))
            }
            let handler = RelaySideHandler(session: sessionBound.value, side: .upstream, plainSocket: tls == nil && target.isSocket,
                                           handshake: tls == nil ? nil : attempt)
            attempt.handler = handler
            try channel.pipeline.syncOperations.addHandler(handler)
        }.whenComplete { result in bound.value.connected(result) }
    }

    /// TCP is up (or failed). Over TLS the attempt succeeds only when the handshake does.
    private func connected(_ result: Result<Channel, Error>) {
        guard completion != nil else {
            if case .success(let channel) = result { channel.close(promise: nil) }  // cancelled meanwhile
            return
        }
        switch result {
        case .failure(let error):
            complete(.failure(error))
        case .success(let channel):
            self.channel = channel
            guard awaitsHandshake, !handshakeDone else { return succeed(channel) }
            let remaining = settings.connectTimeout &- min(settings.connectTimeout, clock.monotonicNanoseconds() &- startedAt)
            let bound = NIOLoopBound(self, eventLoop: loop)
            handshakeTimer = loop.scheduleTask(in: .nanoseconds(Int64(clamping: max(remaining, 1)))) {
                bound.value.handshakeFailed(ChannelError.connectTimeout(.nanoseconds(Int64(clamping: remaining))))
            }
        }
    }

    /// The upstream's TLS handshake completed (told by its `RelaySideHandler`).
    func handshakeCompleted() {
        handshakeDone = true
        if let channel, completion != nil { succeed(channel) }
    }

    /// The TLS handshake failed, the connection closed during it, or it took too long.
    func handshakeFailed(_ error: Error) {
        guard completion != nil else { return }
        handler?.detachFromSession()
        channel?.close(promise: nil)
        complete(.failure(error))
    }

    /// Whether the attempt still waits for its handshake (the handler's events go here then).
    var waitsForHandshake: Bool { completion != nil && awaitsHandshake }

    func cancel() {
        guard completion != nil else { return }
        completion = nil
        handshakeTimer?.cancel()
        handler?.detachFromSession()
        channel?.close(promise: nil)
    }

    private func succeed(_ channel: Channel) {
        guard let handler else { return complete(.failure(ChannelError.ioOnClosedChannel)) }
        complete(.success(DialedUpstream(endpoint: handler, greeting: nil, pooled: false, writable: channel.isWritable)))
    }

    private func complete(_ result: Result<DialedUpstream, Error>) {
        handshakeTimer?.cancel()
        if case .failure = result { handler?.detachFromSession() } else { handler?.handshakeEnded() }
        let done = completion
        completion = nil
        done?(result)
    }
}
