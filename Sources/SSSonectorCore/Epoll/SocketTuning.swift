import Glibc
import NIOCore

/// Socket options and addresses of the epoll data path, as plain system calls: the same
/// options `SocketOptions` sets through SwiftNIO on the other path (TCP_NODELAY on both sides,
/// keepalive and its idle time from `connection`).
enum SocketTuning {
    /// `setsockopt` of one integer option; the call's result.
    @discardableResult
    static func set(_ fd: CInt, _ level: Int32, _ name: Int32, _ value: Int32) -> Int32 {
        var value = value
        return setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Throws the current errno when `result` is a failed system call's.
    static func check(_ result: Int32, _ call: String) throws {
        if result < 0 { throw IOError(errnoCode: errno, reason: call) }
    }

    /// Options a listening socket passes on to the sockets it accepts (Linux copies them).
    static func applyInherited(_ s: ConnectionSettings, to fd: CInt) {
        set(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        guard s.keepAlive else { return }
        set(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
        set(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, Int32(clamping: max(1, s.keepAliveIdle / 1_000_000_000)))
    }

    /// An upstream socket's options: the same set.
    static func applyUpstream(_ s: ConnectionSettings, to fd: CInt) { applyInherited(s, to: fd) }

    /// The socket's own address (`getsockname`).
    static func localAddress(of fd: CInt) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        try check(rc, "getsockname")
        guard let address = address(storage) else { throw IOError(errnoCode: EAFNOSUPPORT, reason: "getsockname") }
        return address
    }

    /// An IPv4 or IPv6 address from the kernel. The host text is left empty: NIO formats it
    /// eagerly otherwise, and nothing on the relay's path reads it.
    static func address(_ storage: sockaddr_storage) -> SocketAddress? {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: "") } }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: "") } }
        default:
            return nil
        }
    }

    /// A bind to every interface (0.0.0.0 or ::).
    static func isWildcard(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4): v4.address.sin_addr.s_addr == 0
        case .v6(let v6): withUnsafeBytes(of: v6.address.sin6_addr) { $0.allSatisfy { $0 == 0 } }
        default: false
        }
    }
}
