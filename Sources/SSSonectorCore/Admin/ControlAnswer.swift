import ConfigValues
import StageABI

/// Turns what a stage's control hook answered into the admin API's response, checking it: a
/// stage's answer is input from a plugin, and a broken one (a status outside the ABI, an empty
/// or malformed answer, one larger than the sink takes) is the stage's fault, answered
/// `502 Bad Gateway` with a JSON error and logged with the stage's name, never passed through.
enum ControlAnswer {
    /// Statuses a control hook may return, by the ABI: OK, or a refusal of the command.
    private static let refusals: Set<Int32> = [SSS_E_ARGUMENT, SSS_E_UNSUPPORTED, SSS_E_CONFIG, SSS_E_NOT_FOUND]

    static func response(stage: StageInstance, body: String) -> AdminResponse {
        let reply = stage.control(body)
        func broken(_ problem: String) -> AdminResponse {
            stage.services.logger.warning("stage answered a control command with \(problem)")
            return .error(.badGateway, "stage \(stage.name) answered with \(problem)")
        }
        guard reply.status == SSS_OK || refusals.contains(reply.status) else {
            return broken("status \(reply.status), which the stage ABI does not define")
        }
        guard !reply.overflowed else { return broken("more than \(SinkCollector.defaultLimit) bytes") }
        guard !reply.answer.isEmpty else { return broken("an empty answer instead of JSON") }
        do {
            let value = try JSONValue.parse(reply.answer)
            return .json(reply.status == SSS_OK ? .ok : .badRequest, value)
        } catch {
            return broken("text that is not JSON (\(error))")
        }
    }
}
