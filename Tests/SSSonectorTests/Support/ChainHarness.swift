import Foundation
import StageABI
@testable import SSSonectorCore

/// Builds chains of real stage instances (loaded through libltdl) with a manual clock, and
/// drives one connection through them without sockets.
final class ChainHarness {
    let clock = ManualClock()
    let poster = RecordingPoster()
    let metrics = MetricsRegistry()
    let table: UpstreamTable
    let chain: StageChain

    /// `stages`: (plugin path or short name, config JSON) in chain order.
    init(stages: [(plugin: String, config: String)], upstreams: [String] = ["a", "b", "c"], weights: [UInt32]? = nil) throws {
        table = UpstreamTable(upstreams.enumerated().map {
            ($0.element, "127.0.0.1:\(9000 + $0.offset)", weights?[$0.offset] ?? 1)
        })
        var instances: [StageInstance] = []
        for (i, stage) in stages.enumerated() {
            let library = try PluginLibrary.load(
                stage.plugin, searchPath: PluginSearchPath(directories: [TestEnvironment.binDirectory]))
            instances.append(try StageInstance(
                type: try library.type(named: nil), name: "s\(i)", pipeline: "test", configJSON: stage.config,
                upstreams: table.current, threadCount: 2,
                services: HostServices(logger: TestEnvironment.logger, clock: clock, metrics: metrics,
                                       metricLabels: [("pipeline", "test"), ("stage", "s\(i)")], poster: poster)))
        }
        chain = StageChain(stages: instances, pipeline: "test", listener: "127.0.0.1:7000")
    }

    deinit { chain.destroyAll() }

    private var nextID: UInt64 = 1

    /// A new connection from `ip` (IPv4 dotted quad).
    func connection(from ip: String = "127.0.0.1") -> ConnectionChain {
        var peer = sss_addr()
        peer.family = UInt16(SSS_AF_INET)
        peer.port = 40000
        let parts = ip.split(separator: ".").compactMap { UInt8($0) }
        withUnsafeMutableBytes(of: &peer.addr) { raw in for (i, b) in parts.enumerated() { raw[i] = b } }
        defer { nextID += 1 }
        return ConnectionChain(chain: chain, id: nextID, threadIndex: 0, peer: peer, local: sss_addr(),
                               acceptedAt: clock.monotonicNanoseconds())
    }

    /// The recorded events of the stage at `index` (a scriptstage).
    func events(_ index: Int) -> [String] {
        guard let json = chain.stages[index].statsJSON(), case .object = try? JSONValueParse(json),
              case .array(let items)? = (try? JSONValueParse(json))?["events"] else { return [] }
        return items.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    var now: UInt64 { clock.monotonicNanoseconds() }

    /// The stats JSON of stage `index`, parsed.
    func stats(_ index: Int) -> JSONValue {
        (try? JSONValue.parse(chain.stages[index].statsJSON() ?? "null")) ?? .null
    }

    /// Sends a control command to stage `index`; returns the parsed answer.
    func control(_ index: Int, _ command: String) -> JSONValue {
        (try? JSONValue.parse(chain.stages[index].control(command).answer)) ?? .null
    }

    /// Opens a connection, lets the chain choose, reports `outcome` for the chosen upstream,
    /// and returns the connection (still open) and the chosen upstream's name.
    func attempt(from ip: String = "127.0.0.1", outcome: UInt32 = SSS_CONNECT_OK) -> (ConnectionChain, String?) {
        let c = connection(from: ip)
        guard c.open(now: now) == .accepted else { return (c, nil) }
        let snapshot = table.current
        guard case .upstream(let i) = c.choose(from: snapshot, tried: [], now: now) else { return (c, nil) }
        c.beginAttempt(upstream: i, in: snapshot, attempt: 1)
        _ = c.report(outcome: outcome, upstream: i, in: snapshot, attempt: 1, osErrno: 0, latency: 1000,
                     remainingUntried: 0, now: now)
        if outcome == SSS_CONNECT_OK {
            // As the host does: the upstream's live `active` figure, which stages read.
            let counters = snapshot.entries[i].counters
            counters.figures.add(.active)
            connectedTo[c.id] = counters
        }
        return (c, snapshot.entries[i].name)
    }

    /// The upstream counters of connections that connected, until they finish.
    private var connectedTo: [UInt64: UpstreamCounters] = [:]

    /// Closes a connection normally.
    func finish(_ c: ConnectionChain, cause: UInt32 = SSS_CLOSE_CLIENT_EOF) {
        connectedTo.removeValue(forKey: c.id)?.figures.subtract(.active)
        var info = ConnectionChain.CloseInfo(cause: cause)
        info.duration = now &- (c.acceptedAt)
        c.close(info, now: now)
    }
}

import ConfigValues

func JSONValueParse(_ text: String) throws -> JSONValue { try JSONValue.parse(text) }
