// Every file of this test target sees the shared test helpers (Tests/TestSupport: MotoServer, RequiredTool,
// freePort, SplitMix64, TempDir, ...) without its own import, so test files written before the helpers moved
// there keep compiling.
@_exported import TestSupport
