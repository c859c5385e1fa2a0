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
    init(stages: [(plugin: String, config: String)], upstreams: [String] = ["a", "b", "c"]) throws {
        table = UpstreamTable(upstreams.enumerated().map { ($0.element, "127.0.0.1:\(9000 + $0.offset)", 1) })
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
                               peerIP: ip, acceptedAt: clock.monotonicNanoseconds())
    }

    /// The recorded events of the stage at `index` (a scriptstage).
    func events(_ index: Int) -> [String] {
        guard let json = chain.stages[index].statsJSON(), case .object = try? JSONValueParse(json),
              case .array(let items)? = (try? JSONValueParse(json))?["events"] else { return [] }
        return items.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    var now: UInt64 { clock.monotonicNanoseconds() }
}

import ConfigValues

func JSONValueParse(_ text: String) throws -> JSONValue { try JSONValue.parse(text) }
