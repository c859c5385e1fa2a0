import StageABI
import Foundation
import Testing
@testable import SSSonectorCore

/// Loading real libraries through libltdl: Swift and C stages, the frozen 1.0 plugin, a plugin
/// from a newer minor, and every refusal with its one-line reason.
@Suite(.serialized) struct PluginLoadingTests {
    @Test func loadsTheSwiftExampleByShortName() throws {
        let library = try PluginLibrary.load("bytecap", searchPath: PluginSearchPath(directories: [TestEnvironment.binDirectory]))
        #expect(library.moduleName == "bytecap")
        #expect(library.abiMajor == 1)
        let type = try library.type(named: nil)
        #expect(type.name == "bytecap")
        #expect(type.supportedEvents.contains([.open, .dataUp, .dataDown, .close, .tick, .stats]))
        #expect(!type.supportedEvents.contains(.selectUpstream))
    }

    @Test func loadsTheCExample() throws {
        let library = try PluginLibrary.load(try CPlugins.allowlist())
        #expect(library.moduleName == "allowlist")
        #expect(library.types.map(\.name) == ["allowlist"])
        #expect(library.types[0].supportedEvents == [.open, .stats])
    }

    @Test func sameFileLoadsOnceAndReturnsTheSameLibrary() throws {
        let path = try CPlugins.fixture(nil)
        let a = try PluginLibrary.load(path)
        let b = try PluginLibrary.load(path)
        #expect(a === b)
    }

    @Test(arguments: [("1.0", UInt16(0)), ("1.1", UInt16(1)), ("1.2", UInt16(2))])
    func loadsAPluginFrozenAtAnOlderMinor(release: String, minor: UInt16) throws {
        let library = try PluginLibrary.load(try CPlugins.fixture(nil, frozenAt: release))
        #expect(library.abiMajor == 1 && library.abiMinor == minor)
        #expect(library.types[0].supportedEvents == [.open, .close, .stats])
        // It also runs: the host hands it newer (larger) structs; it reads its older prefix.
        let h = try ChainHarness(stages: [(library.path, "{}")])
        let c = h.connection()
        #expect(c.open(now: h.now) == .accepted)
        h.finish(c)
        #expect(h.chain.stages[0].statsJSON() == #"{"opens":1,"closes":1}"#)
    }

    @Test func loadsAPluginFromANewerMinorWithLargerDescriptors() throws {
        let library = try PluginLibrary.load(try CPlugins.fixture("FUTURE_MINOR"))
        #expect(UInt32(library.abiMinor) == SSS_ABI_MINOR + 5)
        #expect(library.moduleVersion == "9.9.9")
        // The unknown event bit is dropped; the known ones remain.
        #expect(library.types[0].supportedEvents == [.open, .close, .stats])
        let instance = try StageInstance(
            type: library.types[0], name: "f", pipeline: "p", configJSON: "{}",
            upstreams: UpstreamSnapshot(entries: [], generation: 1), threadCount: 1,
            services: HostServices(logger: TestEnvironment.logger, clock: ManualClock(), metrics: MetricsRegistry(),
                                   metricLabels: [], poster: nil))
        #expect(instance.statsJSON() == #"{"opens":0,"closes":0}"#)
        instance.destroy()
    }

    static let refusals: [(variant: String, kind: PluginError.Kind, words: String)] = [
        ("WRONG_MAJOR", .incompatibleABI, "built for stage ABI 2.\(SSS_ABI_MINOR); this host speaks 1.\(SSS_ABI_MINOR)"),
        ("NO_ENTRY", .noEntrySymbol, "does not export sss_stage_entry"),
        ("MISSING_HOOK", .missingHook, "declares event data_up but its on_data hook is NULL"),
        ("ENTRY_ERROR", .entryFailed, "sss_stage_entry failed: license file /etc/fixture.lic is missing"),
        ("UNDEFINED_SYMBOL", .loadFailed, "undefined symbol: sss_fixture_function_that_no_library_defines"),
    ]

    @Test(arguments: refusals.indices)
    func refusesABadLibraryWithOneLineNamingTheFile(_ index: Int) throws {
        let (variant, kind, words) = Self.refusals[index]
        let path = try CPlugins.fixture(variant)
        let error = try #require(throws: PluginError.self) { try PluginLibrary.load(path) }
        #expect(error.kind == kind)
        #expect(error.description.hasPrefix(path + ": "))
        #expect(error.description.contains(words))
        #expect(!error.description.contains("\n"))
    }

    @Test func refusesAMissingFileAndAnUnknownShortName() throws {
        let missing = try #require(throws: PluginError.self) { try PluginLibrary.load("/nonexistent/libx.so") }
        #expect(missing.description == "/nonexistent/libx.so: no such file")
        let unknown = try #require(throws: PluginError.self) {
            try PluginLibrary.load("nosuchstage", searchPath: PluginSearchPath(directories: ["/nonexistent"]))
        }
        #expect(unknown.kind == .notFound)
        #expect(unknown.description.contains("no libnosuchstage.so found in /nonexistent"))
    }

    @Test func searchOrderPrefersPipelinePathThenEnvironmentThenExecutableFolder() throws {
        let first = TestEnvironment.temporaryDirectory()
        let second = TestEnvironment.temporaryDirectory()
        _ = FileManager.default.createFile(atPath: "\(second)/libonly-in-second.so", contents: Data())
        _ = FileManager.default.createFile(atPath: "\(first)/both.so", contents: Data())
        _ = FileManager.default.createFile(atPath: "\(second)/libboth.so", contents: Data())
        let search = PluginSearchPath.standard(pipelineDirectory: "/base", pluginPath: [first],
                                               environment: ["SSSONECTOR_PLUGIN_PATH": second])
        #expect(search.directories.prefix(2) == [first, second])
        #expect(search.directories.last == PluginSearchPath.executableDirectory())
        #expect(search.resolve("only-in-second", relativeTo: nil) == .file("\(second)/libonly-in-second.so"))
        #expect(search.resolve("both", relativeTo: nil) == .file("\(first)/both.so"))
        #expect(search.resolve("x/y.so", relativeTo: "/base") == .missingFile("/base/x/y.so"))
        #expect(PluginSearchPath.standard(pipelineDirectory: "/base", pluginPath: ["plugins"], environment: [:])
            .directories.first == "/base/plugins")
    }

    @Test func pluginCheckListsEveryProblemOnItsOwnLine() throws {
        let bad = PluginCheck.run(try CPlugins.fixture("MISSING_HOOK"))
        #expect(!bad.ok)
        #expect(bad.problems.count == 1)
        #expect(bad.problems[0].contains("on_data hook is NULL"))
        let good = PluginCheck.run(TestEnvironment.builtPlugin("bytecap"))
        #expect(good.ok, "\(good.problems)")
        #expect(good.passed.contains { $0.contains("create with {} rejected with an explanation: set max_bytes, max_duration or both") })
        let fixture = PluginCheck.run(try CPlugins.fixture(nil))
        #expect(fixture.ok)
        #expect(fixture.passed.contains("type 'fixture': create with {} and destroy"))
    }
}
