import Foundation
import NIOCore
import NIOPosix
@testable import SSSonectorCore
import SSSonectorDemo

/// Echo upstreams on loopback for a test (port 0, read back), stopped at the end.
final class EchoUpstreams: @unchecked Sendable {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    private(set) var servers: [EchoServer] = []

    /// `sharingPorts`: SO_REUSEPORT on each listener, for a test that stops one and holds its
    /// port (`RefusingPort(holding:)`).
    init(count: Int, sharingPorts: Bool = false) async throws {
        for _ in 0..<count { servers.append(try await EchoServer.start(sharingPort: sharingPorts, group: Self.group)) }
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
