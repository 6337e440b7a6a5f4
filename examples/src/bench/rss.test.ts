import { describe, expect, it } from 'vitest';
import { describeRss, rssBreakdown } from './rss.js';

describe.runIf(process.platform === 'linux')('rssBreakdown', () => {
  it('splits the resident set by mapping, and a touched 256 MB buffer shows up as anonymous memory', () => {
    const before = rssBreakdown()!;
    const parts = before.tensorflowLib + before.nodeBinary + before.otherFiles + before.anonymous;
    // smaps and status are read a moment apart: the parts sum to VmRSS within a few MB.
    expect(Math.abs(parts - before.rss)).toBeLessThan(16e6);
    expect(before.nodeBinary).toBeGreaterThan(1e6);
    expect(before.peak).toBeGreaterThanOrEqual(before.rss);
    const buf = new Uint8Array(256e6);
    for (let i = 0; i < buf.length; i += 4096) buf[i] = 1;
    const after = rssBreakdown()!;
    expect(after.anonymous - before.anonymous).toBeGreaterThan(240e6);
    expect(after.anonymous - before.anonymous).toBeLessThan(300e6);
    expect(describeRss(after)).toMatch(/^rss \d+\.\d\d GB \(peak \d+\.\d\d\): libtensorflow 0\.00, node 0\.0\d, other files \d+\.\d\d, anonymous \d+\.\d\d/);
    expect(buf[4096]).toBe(1);
  });
});
