/** The machine's memory read bandwidth from JS, measured in the same run as what it bounds. */
export function measureReadBandwidth(bytes = 512 * 1024 * 1024, reps = 5): number {
  const a = new Float64Array(bytes / 8).fill(1);
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    let s = 0;
    for (let i = 0; i < a.length; i += 4) s += a[i]! + a[i + 1]! + a[i + 2]! + a[i + 3]!;
    best = Math.min(best, performance.now() - t0);
    sink += s;
  }
  if (sink === 42) console.log('');
  return bytes / (best / 1000) / 1e9;
}
