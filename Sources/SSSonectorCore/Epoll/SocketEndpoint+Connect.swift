import Glibc
import NIOCore

/// An upstream's `SocketEndpoint` while it connects: the non-blocking `connect`, its completion
/// (EPOLLOUT with `SO_ERROR`, in `ready`) and `connect_timeout` on the loop's own timer. The
/// attempt the session holds is the endpoint itself.
extension SocketEndpoint {
    /// Connects to `address` for `session`; `completion` runs once, maybe before this returns.
    /// Returns the attempt while it is in flight.
    static func connect(to address: SocketAddress, for session: ProxySession, on loop: EpollLoop,
                        completion: @escaping (Result<DialedUpstream, Error>) -> Void) -> SocketEndpoint? {
        let settings = session.settings
        let family = address.protocol.rawValue
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            completion(.failure(IOError(errnoCode: errno, reason: "socket")))
            return nil
        }
        SocketTuning.applyUpstream(settings, to: fd)
        let rc = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        let code = errno
        guard rc == 0 || code == EINPROGRESS else {
            Glibc.close(fd)
            completion(.failure(IOError(errnoCode: code, reason: "connect")))
            return nil
        }
        let endpoint = SocketEndpoint(fd: fd, side: .upstream, session: session, loop: loop)
        do {
            try endpoint.attach()
        } catch {
            completion(.failure(error))
            return nil
        }
        endpoint.connecting = completion
        if rc == 0 {
            endpoint.connected()
            return nil
        }
        endpoint.connectTimeout = settings.connectTimeout
        let now = UInt64(clamping: NIODeadline.now().uptimeNanoseconds)
        endpoint.connectTimer = loop.startTimer(at: now.addingSaturated(settings.connectTimeout), endpoint)
        return endpoint
    }

    /// `connect_timeout` passed while connecting.
    func timerFired() {
        connectTimer = -1
        connectFailed(ChannelError.connectTimeout(.nanoseconds(Int64(clamping: connectTimeout))))
    }

    private func stopConnectTimer() {
        guard connectTimer >= 0 else { return }
        loop.cancelTimer(connectTimer)
        connectTimer = -1
    }

    func connected() {
        stopConnectTimer()
        let done = connecting
        connecting = nil
        done?(.success(DialedUpstream(endpoint: self, greeting: nil, pooled: false, writable: true)))
    }

    func connectFailed(_ error: Error) {
        guard let done = connecting else { return }
        connecting = nil
        stopConnectTimer()
        close()
        done(.failure(error))
    }

    /// The session ended first: the socket is closed and the completion not called.
    func cancel() {
        guard connecting != nil else { return }
        connecting = nil
        stopConnectTimer()
        close()
    }
}
