/**
 * Where a process's resident memory is, from /proc/self/smaps (Linux): file-backed mappings grouped by the
 * library they map (libtensorflow, the node binary, other shared objects) and anonymous memory (the JS heaps
 * of every isolate, ArrayBuffers — weights, KV pools —, malloc arenas, thread stacks); plus the peak
 * (VmHWM). Worker-thread ranks live in this process, so their memory is in these figures.
 */
import { readFileSync } from 'node:fs';

export interface RssBreakdown {
  /** Resident now and at the peak (VmHWM), bytes. */
  rss: number;
  peak: number;
  /** Resident pages of libtensorflow*.so (code and data, mapped and touched). */
  tensorflowLib: number;
  /** Resident pages of the node executable. */
  nodeBinary: number;
  /** Resident pages of every other file mapping (other .so files, the ICU data, …). */
  otherFiles: number;
  /** Anonymous resident memory (heaps, ArrayBuffers, malloc, stacks). */
  anonymous: number;
  /** This thread's V8 heap and its ArrayBuffers (the main isolate only; ranks' isolates are in `anonymous`). */
  mainHeap: number;
  mainArrayBuffers: number;
}

/** null where /proc is absent (not Linux). */
export function rssBreakdown(): RssBreakdown | null {
  let smaps: string;
  let status: string;
  try {
    smaps = readFileSync('/proc/self/smaps', 'utf8');
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  const kb = (re: RegExp) => Number(re.exec(status)?.[1] ?? 0) * 1024;
  const b = { tensorflowLib: 0, nodeBinary: 0, otherFiles: 0, anonymous: 0 };
  let path = '';
  for (const line of smaps.split('\n')) {
    // A mapping's header: "start-end perms offset dev inode [path]".
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      path = head[1] === '0' ? '' : head[2]!;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const bytes = Number(rss[1]) * 1024;
    if (!path) b.anonymous += bytes;
    else if (/libtensorflow/.test(path)) b.tensorflowLib += bytes;
    else if (path === process.execPath || /\/node$/.test(path)) b.nodeBinary += bytes;
    else b.otherFiles += bytes;
  }
  const m = process.memoryUsage();
  return { rss: kb(/VmRSS:\s+(\d+) kB/), peak: kb(/VmHWM:\s+(\d+) kB/), ...b, mainHeap: m.heapTotal, mainArrayBuffers: m.arrayBuffers };
}

/** "rss 1.40 GB (peak 1.52): libtensorflow 0.31, node 0.04, other files 0.02, anonymous 1.03" */
export function describeRss(r: RssBreakdown): string {
  const g = (x: number) => (x / 1e9).toFixed(2);
  return `rss ${g(r.rss)} GB (peak ${g(r.peak)}): libtensorflow ${g(r.tensorflowLib)}, node ${g(r.nodeBinary)}, other files ${g(r.otherFiles)}, anonymous ${g(r.anonymous)} (main JS heap ${g(r.mainHeap)}, main ArrayBuffers ${g(r.mainArrayBuffers)})`;
}
