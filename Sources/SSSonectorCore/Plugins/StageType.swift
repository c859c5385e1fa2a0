import StageABI

/// One validated stage type from a loaded library: a copy of its descriptor (the fields this
/// host knows; a newer plugin's extra fields are ignored, an older plugin's missing ones are
/// zero) with every hook that its supported events require present.
public struct StageType: @unchecked Sendable {  // function pointers into a resident library
    public let name: String
    public let summary: String
    /// The events the type can serve (bits this host does not know are dropped).
    public let supportedEvents: StageEvents
    public let flags: UInt32
    /// The library file it came from.
    public let library: String
    /// The ABI minor its library was built for: 1.3 and later may leave an open verdict pending.
    public let abiMinor: UInt16
    let descriptor: sss_stage_type

    /// Reads the type at `pointer`, copying at most `stride` bytes. Returns the problems found
    /// (empty when the type is usable) and the type when it is.
    static func read(
        _ pointer: UnsafeRawPointer, stride: Int, library: String, abiMinor: UInt16, hostCaps: UInt64
    ) -> (StageType?, [DescriptorProblem]) {
        var d = sss_stage_type()
        withUnsafeMutableBytes(of: &d) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: min(stride, dst.count)))
        }
        guard let namePtr = d.name else { return (nil, [.init(.malformedDescriptor, "a stage type has no name")]) }
        let name = String(cString: namePtr)
        var problems: [DescriptorProblem] = []
        if d.create == nil { problems.append(.init(.missingHook, "type '\(name)' has no create hook")) }
        if d.destroy == nil { problems.append(.init(.missingHook, "type '\(name)' has no destroy hook")) }
        let events = StageEvents(rawValue: d.supported_events).intersection(.known)
        for (event, hookName, present) in hookPresence(d) where events.contains(event) && !present {
            problems.append(.init(.missingHook, "type '\(name)' declares event \(event.names.joined()) but its \(hookName) hook is NULL"))
        }
        let missingCaps = d.required_host_caps & ~hostCaps
        if missingCaps != 0 {
            problems.append(.init(.incompatibleABI, "type '\(name)' requires host capabilities 0x\(String(missingCaps, radix: 16)) this host lacks"))
        }
        guard problems.isEmpty else { return (nil, problems) }
        let summary = d.description.map { String(cString: $0) } ?? ""
        return (StageType(name: name, summary: summary, supportedEvents: events, flags: d.flags,
                          library: library, abiMinor: abiMinor, descriptor: d), [])
    }

    private static func hookPresence(_ d: sss_stage_type) -> [(StageEvents, String, Bool)] {
        [
            (.open, "on_open", d.on_open != nil),
            (.filterUpstreams, "on_filter_upstreams", d.on_filter_upstreams != nil),
            (.selectUpstream, "on_select_upstream", d.on_select_upstream != nil),
            (.upstreamResult, "on_upstream_result", d.on_upstream_result != nil),
            (.dataUp, "on_data", d.on_data != nil),
            (.dataDown, "on_data", d.on_data != nil),
            (.close, "on_close", d.on_close != nil),
            (.tick, "on_tick", d.on_tick != nil),
            (.stats, "on_stats", d.on_stats != nil),
            (.control, "on_control", d.on_control != nil),
            (.upstreamStatus, "on_upstream_status", d.on_upstream_status != nil),
        ]
    }
}
