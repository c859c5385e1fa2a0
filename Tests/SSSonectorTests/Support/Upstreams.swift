import Foundation
import NIOCore
import NIOPosix
@testable import SSSonectorCore
import SSSonectorDemo

/// Echo upstreams on loopback for a test (port 0, read back), stopped at the end.
final class EchoUpstreams: @unchecked Sendable {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    private(set) var servers: [EchoServer] = []

    init(count: Int) async throws {
        for _ in 0..<count { servers.append(try await EchoServer.start(group: Self.group)) }
    }

    var ports: [Int] { servers.map(\.port) }

    func stop() async {
        for s in servers { await s.stop() }
    }
}

/// Writes a pipeline file with the given upstream ports and stages; returns its path.
func pipelineFile(
    name: String = "test", upstreams: [(String, Int)], stages: String = "[]", connection: String = "{}",
    extra: String = ""
) -> String {
    let ups = upstreams.map { #"{"name": "\#($0.0)", "address": "127.0.0.1:\#($0.1)"}"# }.joined(separator: ", ")
    let text = """
    {"version": 1, "name": "\(name)", "listen": {"address": "127.0.0.1:0"},
     "upstreams": [\(ups)], "connection": \(connection), "stages": \(stages)\(extra)}
    """
    return TestEnvironment.writeFile("\(name).json", text)
}

/// One echo exchange through `port` on loopback: sends `size` bytes, half-closes, and is true
/// when the same bytes came back followed by the upstream's FIN.
func echoExchange(_ port: Int, size: Int = 512, seed: UInt8 = 1) -> Bool {
    guard let c = try? BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 10) else { return false }
    let data = pattern(size, seed: seed)
    guard (try? c.send(data)) != nil, (try? c.receive(exactly: data.count)) == data else { return false }
    c.shutdownWrite()
    return (try? c.receiveToEnd()) == []
}

/// Deterministic test bytes.
func pattern(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(seed)) }
}

/// A loopback port held by a socket bound to it that does not listen: connects to it are
/// refused, and nothing else on the machine can be given it until `release`.
final class PortHold {
    private var fd: Int32

    init(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { release() }
}
