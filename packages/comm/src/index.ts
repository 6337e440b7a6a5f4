export { SoloCommunicator, type CommArray, type Communicator, type ReduceOp } from './communicator.js';
export * from './group-coordinator.js';
export * from './message-queue.js';
export * from './parallel-state.js';
export * from './launcher.js';
export { ShmCommunicator } from './shm-communicator.js';
export { createShmGroup, type ShmGroupHandle, type ShmTuning } from './shm-group.js';
export type { WasmMemory } from './kernels.js';
export { runCommBench, formatTable, type CommBenchOptions, type CommBenchResult, type CommBenchRow } from './bench/comm-bench.js';
