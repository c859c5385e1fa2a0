import Foundation
import Glibc
import SSSonectorDemo

/// A TCP socket bound to 127.0.0.1 on `port` (0: one the kernel picks, read back), listening
/// with `backlog` or, with `nil`, not listening at all.
struct LoopbackSocket {
    let fd: Int32
    /// The bound address (from getsockname), for connecting to it.
    let address: sockaddr_in
    var port: Int { Int(UInt16(bigEndian: address.sin_port)) }

    init(port: Int = 0, listenBacklog backlog: Int32?, beforeBind configure: (Int32) -> Void = { _ in }) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        configure(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        let listening = backlog.map { listen(fd, $0) } ?? 0
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, listening == 0, named == 0 else {
            let code = POSIXErrorCode(rawValue: errno) ?? .EIO
            close(fd)
            throw POSIXError(code)
        }
        self.fd = fd
        self.address = address
    }
}

/// A loopback port that refuses every connect until `stop()`.
///
/// The port stays bound (without listening): the kernel answers a SYN with a reset, and no
/// other socket can take the port meanwhile. A port that was bound and closed again is not
/// enough: tests run in parallel, and another test's listener, or the host's own outgoing
/// connect (a TCP self-connect), can take the freed port and accept.
///
/// The socket has SO_REUSEPORT, so a server that also sets it (`EchoServer.start(sharingPort:)`)
/// can take the port over with no moment in which it is free: a refusing port becomes a
/// listening one by starting the server, then `stop()`; a listening one becomes refusing by
/// `RefusingPort(holding:)`, then stopping the server. A kernel-picked port (port 0) is never one
/// another socket holds, SO_REUSEPORT or not.
///
/// Stopped explicitly, not in `deinit`: Swift may end an object's life after its last use,
/// which would free the port while the host still connects to it.
final class RefusingPort {
    private let socket: LoopbackSocket
    private var bound = true
    var port: Int { socket.port }

    /// A new port (the kernel's pick), or `port`, held alongside the server listening there.
    init(holding port: Int = 0) throws {
        socket = try LoopbackSocket(port: port, listenBacklog: nil) {
            var one: Int32 = 1
            setsockopt($0, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Frees the port (once; later calls do nothing).
    func stop() {
        if bound { close(socket.fd) }
        bound = false
    }
}

/// A port that was free a moment ago, for a child process that binds it itself (openssl
/// s_server). Unlike `RefusingPort`, nothing holds it: use it only where a process must bind.
func freePortForChildProcess() throws -> Int {
    let probe = try LoopbackSocket(listenBacklog: nil)
    close(probe.fd)
    return probe.port
}
