import Glibc
import StageABI
import Synchronization

/// The library's description for the host: its name, version and Swift stage types.
/// A plugin exports it from its one entry symbol:
///
/// ```swift
/// import StageKit
///
/// @_cdecl("sss_stage_entry")
/// public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
///                           _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
///     StageModule.export(name: "bytecap", version: "1.0.0", stages: [ByteCapStage.self],
///                        host: host, module: module, error: error, capacity: capacity)
/// }
/// ```
public enum StageModule {
    /// Registered stage types of this library, by name (one library = one StageKit copy).
    private static let registry = Locked<Registry?>(nil)

    struct Registry: @unchecked Sendable {  // immortal, immutable after creation
        let module: UnsafeMutablePointer<sss_module>
        let types: [String: any Stage.Type]
    }

    /// Builds (once) and returns the module descriptor. Refuses a host of another ABI major.
    public static func export(
        name: String, version: String, stages: [any Stage.Type],
        host: StageEntryHost, module: StageEntryModule, error: StageEntryError, capacity: UInt64
    ) -> Int32 {
        guard let host, let module else { return SSS_E_ARGUMENT }
        if UInt32(host.pointee.abi_major) != SSS_ABI_MAJOR {
            writeError("\(name) is built for stage ABI \(SSS_ABI_MAJOR).\(SSS_ABI_MINOR); host speaks \(host.pointee.abi_major).\(host.pointee.abi_minor)",
                       into: error, capacity: capacity)
            return SSS_E_ABI
        }
        let registry = Self.registry.withLock { current -> Registry in
            if let current { return current }
            let made = makeRegistry(name: name, version: version, stages: stages)
            current = made
            return made
        }
        module.pointee = UnsafePointer(registry.module)
        return SSS_OK
    }

    static func type(named name: String) -> (any Stage.Type)? {
        registry.withLock { $0?.types[name] }
    }

    private static func makeRegistry(name: String, version: String, stages: [any Stage.Type]) -> Registry {
        let types = UnsafeMutablePointer<sss_stage_type>.allocate(capacity: stages.count)
        for (i, stage) in stages.enumerated() {
            (types + i).initialize(to: StageThunks.descriptor(for: stage))
        }
        let module = UnsafeMutablePointer<sss_module>.allocate(capacity: 1)
        module.initialize(to: sss_module(
            struct_size: UInt32(MemoryLayout<sss_module>.size),
            abi_major: UInt16(SSS_ABI_MAJOR), abi_minor: UInt16(SSS_ABI_MINOR),
            module_name: UnsafePointer(strdup(name)), module_version: UnsafePointer(strdup(version)),
            type_count: UInt32(stages.count), type_stride: UInt32(MemoryLayout<sss_stage_type>.stride),
            types: UnsafePointer(types)))
        return Registry(module: module, types: Dictionary(stages.map { ($0.typeName, $0) }, uniquingKeysWith: { a, _ in a }))
    }

    static func writeError(_ text: String, into buffer: UnsafeMutablePointer<CChar>?, capacity: UInt64) {
        guard let buffer, capacity > 0 else { return }
        let bytes = Array(text.utf8.prefix(Int(capacity) - 1))
        bytes.withUnsafeBufferPointer { src in
            src.withMemoryRebound(to: CChar.self) { if let base = $0.baseAddress { buffer.update(from: base, count: bytes.count) } }
        }
        buffer[bytes.count] = 0
    }

    /// The events a Swift stage type serves, derived from its hook conformances.
    static func supportedEvents(of stage: any Stage.Type) -> UInt64 {
        var events: UInt64 = 0
        if stage is any OpenHook.Type { events |= SSS_EV_OPEN | SSS_EV_CLOSE }  // close frees state
        if stage is any UpstreamFilterHook.Type { events |= SSS_EV_FILTER_UPSTREAMS }
        if stage is any UpstreamSelectHook.Type { events |= SSS_EV_SELECT_UPSTREAM }
        if stage is any UpstreamResultHook.Type { events |= SSS_EV_UPSTREAM_RESULT }
        if let data = stage as? any DataHook.Type {
            if data.dataDirections.contains(.up) { events |= SSS_EV_DATA_UP }
            if data.dataDirections.contains(.down) { events |= SSS_EV_DATA_DOWN }
            if data.wantsPayload { events |= SSS_EV_DATA_SLICES }
        }
        if stage is any CloseHook.Type { events |= SSS_EV_CLOSE }
        if stage is any TickHook.Type { events |= SSS_EV_TICK }
        if stage is any StatsHook.Type { events |= SSS_EV_STATS }
        if stage is any ControlHook.Type { events |= SSS_EV_CONTROL }
        if stage is any UpstreamStatusHook.Type { events |= SSS_EV_UPSTREAM_STATUS }
        return events
    }
}

/// The entry's parameter types, so a plugin's entry function needs no unsafe spelling.
public typealias StageEntryHost = UnsafePointer<sss_host_api>?
public typealias StageEntryModule = UnsafeMutablePointer<UnsafePointer<sss_module>?>?
public typealias StageEntryError = UnsafeMutablePointer<CChar>?
