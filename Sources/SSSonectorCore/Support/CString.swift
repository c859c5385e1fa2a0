extension String {
    /// The text of a NUL-terminated C buffer (up to the first NUL; invalid UTF-8 repaired).
    init(nulTerminated buffer: [CChar]) {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
