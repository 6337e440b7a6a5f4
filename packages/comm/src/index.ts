export * from './communicator.js';
export * from './group-coordinator.js';
export * from './message-queue.js';
export * from './parallel-state.js';
export * from './launcher.js';
export { ShmCommunicator } from './shm-communicator.js';
export { createShmGroup, type ShmGroupHandle, type ShmTuning } from './shm-group.js';
export { runCommBench, type CommBenchOptions, type CommBenchResult } from './bench/comm-bench.js';
