import ConfigValues
import Testing

@Suite struct ConfigValuesTests {
    @Test func parsesDurationsSizesAndRates() {
        #expect(Units.parseDuration("250ms") == 250_000_000)
        #expect(Units.parseDuration("30s") == 30_000_000_000)
        #expect(Units.parseDuration("5m") == 300_000_000_000)
        #expect(Units.parseDuration("1h") == 3_600_000_000_000)
        #expect(Units.parseDuration("1.5s") == 1_500_000_000)
        #expect(Units.parseDuration("0") == 0)
        #expect(Units.parseDuration("10") == nil)
        #expect(Units.parseDuration("-1s") == nil)
        #expect(Units.parseDuration("5 parsecs") == nil)
        #expect(Units.parseSize("64KiB") == 65536)
        #expect(Units.parseSize("10MB") == 10_000_000)
        #expect(Units.parseSize("512") == 512)
        #expect(Units.parseSize("lots") == nil)
        #expect(Units.parseRate("1MiB/s") == 1_048_576)
        #expect(Units.formatDuration(250_000_000) == "250ms")
    }

    @Test func parsesJSONKeepingKeyOrderAndReportsWhereItIsMalformed() throws {
        let v = try JSONValue.parse(#"{"b": 1, "a": [true, null, "x\u00e9\n"], "c": -2.5e1}"#)
        #expect(v.jsonText == #"{"b":1,"a":[true,null,"xé\n"],"c":-25}"#)
        let error = try #require(throws: JSONSyntaxError.self) { try JSONValue.parse("{\n  \"a\": 1,\n  \"b\": }") }
        #expect(error.line == 3 && error.column == 8)
        #expect(error.description == "malformed JSON at line 3, column 8: unexpected character '}', expected a value")
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(#"{"a": 1} x"#) }
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse("[1,]") }
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse("01") }
    }

    @Test func stringsRoundTripWithAndWithoutEscapesAndARepeatedKeyIsRefusedInObjectsOfAnySize() throws {
        for text in ["plain", "", "a\"b", "back\\slash", "tab\tend", "\u{1}ctl", "é and 🚀", "\n"] {
            let written = JSONValue.string(text).jsonText
            #expect(try JSONValue.parse(written) == .string(text), "\(written)")
        }
        #expect(JSONValue.string("a\"b\u{1}").jsonText == #""a\"b\u0001""#)
        // An escape after plain text, and a string that never ends.
        #expect(try JSONValue.parse(#""abc\u00e9\/d""#) == .string("abcé/d"))
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(#""abc"#) }
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse("\"ab\u{1}c\"") }
        // Small objects compare keys; past sixteen members a set does: both refuse a repeat,
        // whether the first of the pair came before the set was built or after.
        for (count, first, second) in [(3, 0, 2), (40, 1, 39), (40, 20, 30)] {
            let keys = (0..<count).map { $0 == second ? "k\(first)" : "k\($0)" }
            let text = "{" + keys.map { #""\#($0)": 1"# }.joined(separator: ", ") + "}"
            let error = try #require(throws: JSONSyntaxError.self) { try JSONValue.parse(text) }
            #expect(error.message == #"duplicate key "k\#(first)" (at k\#(first))"#)
        }
        let many = "{" + (0..<40).map { #""k\#($0)": \#($0)"# }.joined(separator: ", ") + "}"
        guard case .object(let members) = try JSONValue.parse(many) else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == (0..<40).map { "k\($0)" })
    }

    @Test func configObjectGivesTypedValuesAndRejectsUnknownKeys() throws {
        let o = try ConfigObject(try JSONValue.parse(#"{"n": 3, "d": "1s", "s": "x", "typo": 1}"#), path: "stages[0].config")
        #expect(try o.int("n", in: 1...5) == 3)
        #expect(try o.duration("d") == 1_000_000_000)
        #expect(try o.string("s") == "x")
        #expect(throws: ConfigError(path: "stages[0].config.typo", "unknown key (expected one of: n, d, s)")) { try o.finish() }
        let bad = try ConfigObject(try JSONValue.parse(#"{"n": "3", "m": 2.5, "k": 9}"#), path: "")
        #expect(throws: ConfigError(path: "n", #"expected a whole number, found "3""#)) { try bad.int("n") }
        #expect(throws: ConfigError(path: "m", "expected a whole number, found 2.5")) { try bad.int("m") }
        #expect(throws: ConfigError(path: "k", "expected a whole number in 1...5, found 9")) { try bad.int("k", in: 1...5) }
    }
}
