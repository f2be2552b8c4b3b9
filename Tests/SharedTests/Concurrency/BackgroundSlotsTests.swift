import Testing
@testable import Shared

@Suite struct BackgroundSlotsTests {
    /// A second thread only while long transfers and second threads together leave a core for it.
    @Test(arguments: [
        // cores, streams (long transfers, the asking one included), second threads running, may start, must yield (that many running)
        (2, 1, 0, true, false),    // one long read on two cores: a second thread
        (2, 2, 0, false, false),   // two: none; a second thread already running for one of them must go
        (2, 2, 1, false, true),
        (2, 1, 1, false, false),   // (a stage of a read that already ended: its slot comes back with it)
        (1, 1, 0, false, false),   // one core: never
        (4, 1, 0, true, false),
        (4, 2, 1, true, false),    // four cores: two reads each with a second thread
        (4, 2, 2, false, false),
        (4, 3, 2, false, true),    // a third read arrives: one of the two gives its up
        (4, 3, 1, false, false),
        (8, 6, 2, false, false),
        (8, 64, 1, false, true),
    ] as [(Int, Int, Int, Bool, Bool)])
    func aSecondThreadOnlyWhileACoreIsLeftForIt(cores: Int, streams: Int, stages: Int, mayStart: Bool, mustYield: Bool) {
        let rule = StageRule(cores: cores)
        #expect(rule.mayStart(streams: streams, stages: stages) == mayStart)
        #expect(rule.mustYield(streams: streams, stages: stages) == mustYield)
    }

    /// The counts follow the rule: on two cores one transfer takes the one spare slot; a second transfer arriving
    /// makes the holder give it up when asked; released slots and ended transfers come back.
    @Test func slotsFollowTheTransfersInFlight() {
        let slots = BackgroundSlots(cores: 2)
        slots.streamStarted()
        #expect(slots.tryAcquire() && slots.inUse == 1)
        #expect(!slots.tryAcquire(), "a second thread already runs beside the one transfer")
        #expect(!slots.tryYield(), "one transfer and its second thread fit two cores")
        slots.streamStarted()
        #expect(!slots.tryAcquire())
        #expect(slots.tryYield() && slots.inUse == 0, "two transfers on two cores: the second thread goes")
        #expect(!slots.tryYield(), "nothing left to give up")
        slots.streamEnded()
        #expect(slots.tryAcquire() && slots.inUse == 1)
        slots.release()
        slots.streamEnded()
        #expect(slots.inUse == 0 && slots.activeStreams == 0)
        #expect(BackgroundSlots(cores: 0).rule.cores == 1, "at least one core")
    }
}
