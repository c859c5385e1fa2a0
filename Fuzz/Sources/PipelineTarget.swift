import ConfigValues
import SSSonectorCore

/// The `pipeline` target: everything that reads a pipeline file: the JSON parser, the decoder
/// (every key, type and range), durations, sizes, rates and addresses. Input from outside must
/// give an error, never a trap, a hang or a crash.
func fuzzPipeline(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let text = String(decoding: bytes, as: UTF8.self)
    _ = PipelineDecoder.decode(text: text, file: "fuzz.json")
    // The same bytes as each unit and as an address, where the decoder would not reach them.
    let line = String(text.prefix(200))
    _ = Units.parseDuration(line)
    _ = Units.parseSize(line)
    _ = Units.parseRate(line)
    _ = EndpointAddress.parse(line, allowPortZero: true)
    return 0
}
