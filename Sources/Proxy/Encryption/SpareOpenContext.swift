import Shared
import Synchronization

/// An opening cipher context in a box, so that it can outlive the read that made it.
final class OpenContextBox {
    let context: AEADContext

    init(_ context: consuming AEADContext) {
        self.context = context
    }
}

/// One spare opening context for the reads of one cached segment key (issue 12: making a context per read —
/// `EVP_CIPHER_CTX_new`, the AES key schedule, its scratch, and freeing them — cost ~3 k instructions and two
/// allocations of every small encrypted GET).
///
/// A read takes the spare (or, while another read holds it, makes its own from the same key) and gives it back
/// when it is done; the slot is exchanged atomically, so a context is used by one read on one thread at a time and
/// never shared. Whoever holds a context last frees it (the slot, when the cached key goes): `EVP_CIPHER_CTX_free`
/// wipes the key schedule, as for a context made per read. The owner (`DerivedSegmentKey`) only ever offers this
/// slot to openers of its own key, so a context in it always holds that key.
///
/// `@unchecked Sendable`: the only state is the atomic slot, and a box in it belongs to whoever exchanged it out.
final class SpareOpenContext: @unchecked Sendable {
    /// A retained `OpenContextBox`, or nil.
    private let slot = Atomic<UnsafeMutableRawPointer?>(nil)

    init() {}

    /// The spare, when there is one made for `cipher` (and for opening); the slot is then empty.
    func take(_ cipher: AEADAlgorithm) -> OpenContextBox? {
        guard let pointer = slot.exchange(nil, ordering: .acquiringAndReleasing) else { return nil }
        let box = Unmanaged<OpenContextBox>.fromOpaque(pointer).takeRetainedValue()
        // Never otherwise (one key, one object's cipher); a mismatch is dropped, not used.
        return box.context.algorithm == cipher && !box.context.sealing ? box : nil
    }

    /// Keeps `box` as the spare, unless another read already gave one back (then `box` is dropped).
    func giveBack(_ box: OpenContextBox) {
        let pointer = Unmanaged.passRetained(box).toOpaque()
        if !slot.compareExchange(expected: nil, desired: pointer, ordering: .acquiringAndReleasing).exchanged {
            Unmanaged<OpenContextBox>.fromOpaque(pointer).release()
        }
    }

    /// Whether a spare is kept (tests).
    var isHolding: Bool { slot.load(ordering: .acquiring) != nil }

    deinit {
        if let pointer = slot.exchange(nil, ordering: .acquiringAndReleasing) {
            Unmanaged<OpenContextBox>.fromOpaque(pointer).release()
        }
    }
}
