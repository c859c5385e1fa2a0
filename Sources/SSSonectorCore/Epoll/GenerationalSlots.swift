/// Things an `EpollLoop` hands out by index (watched sockets, its own timers): a freed slot is
/// reused, and its generation changes, so an event or a timer entry still queued for the old
/// occupant reaches nobody. Confined to the loop.
struct GenerationalSlots<Element> {
    private var slots: [(element: Element?, generation: UInt32)] = []
    private var free: [Int] = []

    /// Stores `element`; returns its slot and the slot's current generation.
    mutating func insert(_ element: Element) -> (slot: Int, generation: UInt32) {
        if let slot = free.popLast() {
            slots[slot].element = element
            return (slot, slots[slot].generation)
        }
        slots.append((element, 0))
        return (slots.count - 1, 0)
    }

    /// Frees `slot`: what still names its old generation finds nothing.
    mutating func remove(_ slot: Int) {
        slots[slot].element = nil
        slots[slot].generation &+= 1
        free.append(slot)
    }

    /// The element in `slot` if it is still the one of `generation`.
    func element(_ slot: Int, generation: UInt32) -> Element? {
        guard slot < slots.count, slots[slot].generation == generation else { return nil }
        return slots[slot].element
    }
}
