import Foundation
import Histogram

/// What a load run measured: rates, latency percentiles, errors by kind.
struct LoadResult {
    let mode: Mode
    let connections: Int
    let payload: Int
    let seconds: Double
    let messages: UInt64
    let bytes: UInt64
    let latencies: Histogram<UInt64>
    let errors: [String: UInt64]

    var messagesPerSecond: Double { Double(messages) / seconds }
    var megabytesPerSecond: Double { Double(bytes) / seconds / 1e6 }
    var errorCount: UInt64 { errors.values.reduce(0, +) }

    func percentileMicroseconds(_ p: Double) -> Double {
        latencies.totalCount == 0 ? 0 : Double(latencies.valueAtPercentile(p)) / 1000
    }

    var text: String {
        var lines = [
            "mode \(mode.rawValue), \(connections) connections, \(payload)-byte payload, \(String(format: "%.1f", seconds)) s measured",
            String(format: "requests   %llu (%.0f/s)", messages, messagesPerSecond),
            String(format: "throughput %.1f MB/s", megabytesPerSecond),
            "errors     \(errorCount)" + (errors.isEmpty ? "" : " " + errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")),
        ]
        if mode != .bulk {
            lines.append(String(format: "latency us p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f",
                                percentileMicroseconds(50), percentileMicroseconds(90), percentileMicroseconds(99),
                                percentileMicroseconds(99.9), Double(latencies.max) / 1000))
        }
        return lines.joined(separator: "\n")
    }

    var json: String {
        var object: [String: Any] = [
            "mode": mode.rawValue, "connections": connections, "payload": payload, "seconds": seconds,
            "requests": messages, "requests_per_second": messagesPerSecond, "megabytes_per_second": megabytesPerSecond,
            "errors": errorCount, "errors_by_kind": errors,
        ]
        if mode != .bulk {
            object["latency_us"] = ["p50": percentileMicroseconds(50), "p90": percentileMicroseconds(90),
                                    "p99": percentileMicroseconds(99), "p99_9": percentileMicroseconds(99.9),
                                    "max": Double(latencies.max) / 1000]
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
