import ConfigValues
import Foundation
@testable import SSSonectorCore
import SSSonectorDemo

/// One HTTP/1.1 request over a plain socket; returns the status code and the body.
func http(_ method: String, port: Int, _ path: String, body: String = "", token: String? = nil) throws -> (status: Int, body: String) {
    let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
    var request = "\(method) \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
    if let token { request += "Authorization: Bearer \(token)\r\n" }
    request += "\r\n" + body
    try client.send(Array(request.utf8))
    let text = String(decoding: try client.receiveToEnd(), as: UTF8.self)
    let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
    let responseBody = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    return (status, responseBody)
}

func httpJSON(_ method: String, port: Int, _ path: String, body: String = "") throws -> (status: Int, json: JSONValue) {
    let r = try http(method, port: port, path, body: body)
    return (r.status, (try? JSONValue.parse(r.body)) ?? .null)
}

/// A strict parser of the Prometheus text exposition format (0.0.4): every line must be a
/// comment, a HELP/TYPE line, or a sample `name{label="value",...} number`.
struct PrometheusText {
    struct Sample: Equatable {
        let name: String
        let labels: [String: String]
        let value: Double
    }
    var samples: [Sample] = []
    var types: [String: String] = [:]

    struct Malformed: Error, CustomStringConvertible {
        let line: String
        var description: String { "not Prometheus text: \(line)" }
    }

    init(_ text: String) throws {
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw)
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else { throw Malformed(line: line) }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            samples.append(try Self.sample(line))
        }
    }

    static func sample(_ line: String) throws -> Sample {
        var rest = Substring(line)
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
        guard let first = name.first, first.isLetter || first == "_" else { throw Malformed(line: line) }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let key = rest.prefix { $0 != "=" }
                rest = rest.dropFirst(key.count)
                guard rest.hasPrefix("=\"") else { throw Malformed(line: line) }
                rest = rest.dropFirst(2)
                var value = ""
                while let c = rest.first, c != "\"" {
                    if c == "\\" { rest = rest.dropFirst() }
                    value.append(rest.first ?? " ")
                    rest = rest.dropFirst()
                }
                guard rest.first == "\"" else { throw Malformed(line: line) }
                rest = rest.dropFirst()
                labels[String(key)] = value
                if rest.first == "," { rest = rest.dropFirst() }
                guard !rest.isEmpty else { throw Malformed(line: line) }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " ", let value = Double(rest.dropFirst().split(separator: " ").first ?? "")
            ?? (rest.dropFirst() == "+Inf" ? .infinity : nil) else { throw Malformed(line: line) }
        return Sample(name: String(name), labels: labels, value: value)
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { k, v in sample.labels[k] == v } }?.value
    }
}
