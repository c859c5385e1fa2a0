import ConfigValues
import Synchronization

/// How a figure is exported: a counter only grows; a gauge goes up and down.
public enum FigureKind: Sendable {
    case counter
    case gauge
}

/// Where one figure appears (docs/operations.md, "Figures"): its `/stats` key, its Prometheus
/// metric (the name after `sssonector_`, with fixed labels) and help text. Each figure is
/// declared once, as a case of a `FigureList`; its atomic, its JSON key and its metric all come
/// from that declaration (as Envoy's `ALL_..._STATS` lists do).
public struct FigureName: Sendable {
    public let key: String
    public let metric: String
    public let labels: [(String, String)]
    public let help: String
    public let kind: FigureKind
    /// What one unit of the stored value is worth in the exported value (1e-9: nanoseconds
    /// stored, seconds exported).
    public let scale: Double

    public init(_ key: String, _ kind: FigureKind, metric: String, labels: [(String, String)] = [],
                scale: Double = 1, help: String) {
        self.key = key
        self.metric = metric
        self.labels = labels
        self.help = help
        self.kind = kind
        self.scale = scale
    }
}

/// A list of figures counted together, one case per figure: an `Int` enum whose cases take
/// the default raw values 0, 1, 2... (the raw value is the figure's slot).
public protocol FigureList: CaseIterable, Sendable, RawRepresentable where AllCases == [Self], RawValue == Int {
    var name: FigureName { get }
}

/// The live values of one `FigureList`: one relaxed atomic per case, so the hot path pays one
/// atomic add per event and the readers (`/stats`, `/metrics`) never lock.
public final class FigureValues<List: FigureList>: Sendable {
    private let cells: [FigureCell]

    public init() {
        cells = List.allCases.map { _ in FigureCell() }
    }

    @inline(__always)
    private func cell(_ figure: List) -> FigureCell {
        cells[figure.rawValue]
    }

    public func add(_ figure: List, _ amount: UInt64 = 1) {
        cell(figure).value.wrappingAdd(amount, ordering: .relaxed)
    }

    public func subtract(_ figure: List, _ amount: UInt64 = 1) {
        cell(figure).value.wrappingSubtract(amount, ordering: .relaxed)
    }

    /// Raises a high-water mark to `value` if it is higher.
    public func raise(_ figure: List, to value: UInt64) {
        let box = cell(figure)
        var seen = box.value.load(ordering: .relaxed)
        while value > seen {
            let (done, current) = box.value.compareExchange(expected: seen, desired: value, ordering: .relaxed)
            if done { break }
            seen = current
        }
    }

    /// Adds (or, negative, subtracts) and returns the new value.
    @discardableResult
    public func change(_ figure: List, by delta: Int64) -> UInt64 {
        cell(figure).value.wrappingAdd(UInt64(bitPattern: delta), ordering: .relaxed).newValue
    }

    public subscript(_ figure: List) -> UInt64 { cell(figure).value.load(ordering: .relaxed) }

    /// The exported value of `figure` (scaled).
    public func exported(_ figure: List) -> Double {
        let n = figure.name
        // A gauge may dip below zero for an instant between two relaxed updates.
        let raw = n.kind == .gauge ? Double(Int64(bitPattern: self[figure])) : Double(self[figure])
        return raw * n.scale
    }

    /// Every figure as `/stats` keys and values.
    public var json: [(String, JSONValue)] {
        List.allCases.map { f in
            let value = exported(f)
            return (f.name.key, f.name.scale == 1 ? .int(Int64(value)) : .number(value))
        }
    }
}

/// One atomic, boxed so an array can hold it (`Atomic` cannot be copied into one).
final class FigureCell: Sendable {
    let value = Atomic<UInt64>(0)
}
