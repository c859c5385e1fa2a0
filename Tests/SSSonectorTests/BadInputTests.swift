import Foundation
import Testing
@testable import ConfigValues
@testable import SSSonectorCore

/// Each defect the attack on the host found in its input handling, as a regression test: a
/// value that trapped, wrapped, hung or was silently accepted is now exit 2 with its JSON path.
@Suite struct BadInputTests {
    static let base = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}]EXTRA}"#

    func file(_ extra: String) -> String { Self.base.replacingOccurrences(of: "EXTRA", with: extra) }

    func validate(_ text: String) throws -> (status: Int32, stderr: String) {
        let path = TestEnvironment.writeFile("p.json", text)
        let r = try HostProcess.runToEnd(["validate", path])
        return (r.status, r.stderr.replacingOccurrences(of: path, with: "p.json"))
    }

    static let ratelimit = #", "stages": [{"name": "rl", "plugin": "ratelimit", "config": CONFIG}]"#

    @Test(arguments: [
        // Numbers of 2^64 and more trapped in conversions.
        (#", "connection": {"buffer_limit": 1e20}"#, "p.json: connection.buffer_limit: expected a size of 0...1073741824 bytes, found 1e+20"),
        (ratelimit.replacingOccurrences(of: "CONFIG", with: #"{"default_rate": 1000, "bandwidth": {"rate": 1000, "burst": 1e20}}"#),
         "p.json: stages[0].config.bandwidth.burst: expected a size of 1...1125899906842624 bytes"),
        (ratelimit.replacingOccurrences(of: "CONFIG", with: #"{"default_rate": 1000, "bandwidth": {"rate": 1e300}}"#),
         "p.json: stages[0].config.bandwidth.rate: expected a rate from 1 B/s to 1PiB/s, found 1e+300"),
        // A rate so small that the delay to the next byte was infinite (a crash at run time).
        (ratelimit.replacingOccurrences(of: "CONFIG", with: #"{"default_rate": 1000, "bandwidth": {"rate": 1e-10}}"#),
         "p.json: stages[0].config.bandwidth.rate: expected a rate from 1 B/s to 1PiB/s, found 1e-10"),
        // Durations near 2^64 ns wrapped deadlines.
        (#", "connection": {"idle_timeout": "18446744073s"}"#, #"p.json: connection.idle_timeout: expected at most 30d, found "18446744073s""#),
        (#", "connection": {"idle_timeout": "213503d"}"#, #"p.json: connection.idle_timeout: expected at most 30d, found "213503d""#),
        (#", "connection": {"drain_timeout": "213503d"}"#, #"p.json: connection.drain_timeout: expected at most 30d"#),
        (#", "connection": {"connect_timeout": "1h"}"#, #"p.json: connection.connect_timeout: expected at most 10m"#),
        // Lenient input that used to pass.
        (#", "version": 1"#, #"p.json: malformed JSON at line 1, column 123: duplicate key "version" (at version)"#),
        (#", "connection": {"idle_timeout": " 5s"}"#, #"p.json: connection.idle_timeout: expected a duration with a unit"#),
        (#", "connection": {"idle_timeout": "5.s"}"#, #"p.json: connection.idle_timeout: expected a duration with a unit"#),
        (#", "connection": {"idle_timeout": "+5s"}"#, #"p.json: connection.idle_timeout: expected a duration with a unit"#),
    ])
    func refusedWithItsPath(_ extra: String, _ expected: String) throws {
        let r = try validate(file(extra))
        #expect(r.status == 2)
        #expect(r.stderr.contains(expected), "stderr was: \(r.stderr)")
    }

    @Test(arguments: [
        ("256.256.256.256:80", "listen.address: not an IPv4 address (four parts of 0...255)"),
        ("127.0.0.1:+80", "listen.address: port must be 0...65535"),
        ("[::g]:80", "listen.address: not an IPv6 address"),
        // LONG stands for a 70,000-character host name (built in the test, not shown as an argument).
        ("LONG:80", "listen.address: a host name has at most 253 characters, found \"hhhh"),
        ("-bad-.example:80", "listen.address: not a host name"),
    ])
    func listenAddressesAreStrict(_ written: String, _ expected: String) throws {
        let address = written.replacingOccurrences(of: "LONG", with: String(repeating: "h", count: 70_000))
        let text = #"{"version": 1, "name": "t", "listen": {"address": "\#(address)"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}]}"#
        let r = try validate(text)
        #expect(r.status == 2)
        #expect(r.stderr.contains("p.json: \(expected)"), "stderr was: \(r.stderr.prefix(500))")
        #expect(r.stderr.count < 1000, "a huge value is cut in the message")
    }

    @Test func aKeyWithNewlinesIsOneEscapedLineNamingTheFile() throws {
        let r = try validate(file(#", "bo\ngus\nkey": 1"#))
        #expect(r.status == 2)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr was: \(r.stderr)")
        #expect(lines.first?.hasPrefix(#"p.json: ["bo\ngus\nkey"]: unknown key"#) == true, "stderr was: \(r.stderr)")
    }

    @Test func validAddressesAndDurationsStillPass() throws {
        for text in ["127.0.0.1:0", "[::1]:0", "localhost:0"] {
            let r = try validate(#"{"version": 1, "name": "t", "listen": {"address": "\#(text)"}, "upstreams": [{"name": "a", "address": "db-1.internal.example:5432"}], "connection": {"idle_timeout": "1.5s", "drain_timeout": "30d", "buffer_limit": "1MiB"}}"#)
            #expect(r.status == 0, "\(text): \(r.stderr)")
        }
    }

    // MARK: units and the parser, directly

    @Test func unitsAreStrictAndBounded() {
        #expect(Units.parseDuration("5s") == 5_000_000_000)
        #expect(Units.parseDuration("1.25ms") == 1_250_000)
        for bad in [" 5s", "5s ", "5.s", ".5s", "+5s", "5 s", "1e3s", "5", "s", "", "--1s"] {
            #expect(Units.parseDuration(bad) == nil, "\(bad)")
        }
        #expect(Units.parseDuration("30d") == Units.maximumDuration)
        #expect(Units.parseDuration("31d") == nil)
        #expect(Units.parseSize("1e20") == nil)
        #expect(Units.parseSize("99999999999999999999999GiB") == nil)
        #expect(Units.parseRate("1MiB/s") == 1_048_576)
        #expect(Units.parseSize("64 KiB") == 65536)
        #expect(Units.parseSize(" 64KiB") == nil)
        #expect(Units.parseSize("64  KiB") == nil)
    }

    @Test func saturatingArithmeticNeverTraps() {
        #expect(UInt64(saturatingNanoseconds: .infinity) == .max)
        #expect(UInt64(saturatingNanoseconds: .nan) == 0)
        #expect(UInt64(saturatingNanoseconds: -5) == 0)
        #expect(UInt64(saturatingNanoseconds: 1e300) == .max)
        #expect(UInt64(saturatingNanoseconds: 1.2) == 2)
        #expect(UInt64.max.addingSaturated(1) == .max)
        #expect(UInt64(5).addingSaturated(6) == 11)
        #expect(Int64(saturatingNanoseconds: UInt64.max) == .max)
    }

    @Test func duplicateKeysAreRefusedWithThePathOfTheSecond() {
        let error = #expect(throws: JSONSyntaxError.self) {
            _ = try JSONValue.parse(#"{"stages": [{"name": "a", "config": {"x": 1, "x": 2}}]}"#)
        }
        #expect(error?.message == #"duplicate key "x" (at stages[0].config.x)"#)
    }
}
