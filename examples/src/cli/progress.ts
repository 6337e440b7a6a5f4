/** Weight-loading progress on stderr: a bar on a terminal, a few lines otherwise. */
export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr) {
  let lastQuarter = -1;
  let done = false;
  return (loaded: number, total: number) => {
    if (done || total === 0) return;
    const frac = Math.min(1, loaded / total);
    if (stream.isTTY) {
      const width = 30;
      const fill = Math.round(frac * width);
      stream.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${loaded}/${total} tensors`);
      if (loaded >= total) stream.write('\n');
    } else {
      const q = Math.floor(frac * 4);
      if (q > lastQuarter) {
        lastQuarter = q;
        stream.write(`${label}: ${Math.round(frac * 100)}% (${loaded}/${total} tensors)\n`);
      }
    }
    if (loaded >= total) done = true;
  };
}
