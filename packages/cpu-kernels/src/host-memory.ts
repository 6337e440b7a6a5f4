/**
 * Host buffers for what the kernels stream every token (packed linear weights, bf16 embeddings and LM head):
 * 2 MiB transparent huge pages where the addon and Linux give them (native/host-memory.c: mapped 2 MiB-aligned,
 * MADV_HUGEPAGE before the first touch), an ordinary ArrayBuffer otherwise. The bytes are the same, zeroed,
 * either way; only how fast they stream differs (docs/benchmarks/cpu-kernels.md, "huge pages").
 */
import { loadNative } from './native.js';

/** Smaller buffers cannot hold a whole aligned 2 MiB page: they stay ordinary ArrayBuffers. */
export const HUGE_PAGE_BYTES = 2 << 20;

export interface HostBufferOptions {
  /** Ask for huge pages (default: the process's, setHugePagesDefault); false: an ordinary ArrayBuffer. */
  hugePages?: boolean;
}

/** WEFT_HUGE_PAGES=0 turns huge pages off for the process (read once, here, as WEFT_CPU_KERNELS_ADDON is where the
 * addon loads): an A/B of a whole run (bench:cpu's ranks are child processes) without a code change. */
let hugePagesDefault = process.env.WEFT_HUGE_PAGES !== '0';

/** The process's default for hostBuffer (WEFT_HUGE_PAGES, else true): an allocation policy set once at the edge,
 * before the weights load (a launcher option, or a bench's A/B of the two in one process). */
export function setHugePagesDefault(on: boolean): void {
  hugePagesDefault = on;
}

/** `bytes` zeroed bytes; huge pages where available and the buffer is at least one huge page. */
export function hostBuffer(bytes: number, options: HostBufferOptions = {}): ArrayBuffer {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`hostBuffer: bytes = ${bytes} must be a non-negative integer`);
  const addon = !(options.hugePages ?? hugePagesDefault) || bytes < HUGE_PAGE_BYTES ? null : loadNative().addon;
  return addon?.hostBuffer ? addon.hostBuffer(bytes, true) : new ArrayBuffer(bytes);
}

/** Whether `buffer` came from hostBuffer with huge pages advised (madvise took; the kernel still decides per page). */
export function hasHugePages(buffer: ArrayBufferLike): boolean {
  return (buffer as { hugePages?: boolean }).hugePages === true;
}
