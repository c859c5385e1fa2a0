import Glibc
import NIOCore

/// A plain blocking TCP client over POSIX sockets with receive timeouts: the traffic driver of
/// `sssonector demo` and the tests' client. Not for the relay (that is SwiftNIO).
public final class BlockingTCPClient: @unchecked Sendable {  // a socket: one thread may send while another receives
    public private(set) var fd: Int32

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case connect(Int32), send(Int32), receive(Int32), timeout, closed
        public var description: String {
            switch self {
            case .connect(let e): "connect: \(String(cString: strerror(e)))"
            case .send(let e): "send: \(String(cString: strerror(e)))"
            case .receive(let e): "receive: \(String(cString: strerror(e)))"
            case .timeout: "timed out"
            case .closed: "connection closed by peer"
            }
        }
    }

    /// Connects to an IPv4 or IPv6 literal; `timeoutSeconds` bounds every receive.
    public init(host: String, port: Int, timeoutSeconds: Int = 10) throws(Failure) {
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { throw .connect(EINVAL) }
        fd = socket(address.protocol.rawValue, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        if result != 0 {
            let e = errno
            Glibc.close(fd)
            throw .connect(e)
        }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Sends every byte.
    public func send(_ bytes: [UInt8]) throws(Failure) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN ? .timeout : .send(errno)
            }
            sent += n
        }
    }

    /// Receives exactly `count` bytes.
    public func receive(exactly count: Int) throws(Failure) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n == 0 { throw .closed }
            if n < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN ? .timeout : .receive(errno)
            }
            got += n
        }
        return out
    }

    /// Receives until the peer closes; returns everything.
    public func receiveToEnd(limit: Int = 1 << 30) throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        try receiveToEnd(into: &out, limit: limit)
        return out
    }

    /// Receives until the peer closes, appending to `out`: on a failure, `out` holds what
    /// arrived before it (for a test to say how far a transfer got).
    public func receiveToEnd(into out: inout [UInt8], limit: Int = 1 << 30) throws(Failure) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n == 0 { return }
            if n < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN ? .timeout : .receive(errno)
            }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Half-closes: no more bytes from this side.
    public func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with a reset (SO_LINGER 0: close sends RST instead of FIN).
    public func reset() {
        guard fd >= 0 else { return }
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        Glibc.close(fd)
        fd = -1
    }
}
