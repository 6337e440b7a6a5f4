/**
 * Dying with the parent. A rank process started by `weft launch` has an IPC
 * channel and ends when it closes. A process started from a shell or by `npx`
 * has none: when its parent is killed it is re-parented (to init or a
 * subreaper) and, with rank threads busy, would run on alone. This polls the
 * parent pid (cheap, unref'd) and calls `onOrphaned` once it changes.
 */
export function watchParent(onOrphaned: () => void, intervalMs = 1000): () => void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onOrphaned();
    }
  }, intervalMs);
  timer.unref();
  const onDisconnect = () => {
    clearInterval(timer);
    onOrphaned();
  };
  // With an IPC channel (spawned by a supervisor), its closing says the same, at once.
  if (process.channel) process.once('disconnect', onDisconnect);
  return () => {
    clearInterval(timer);
    process.off('disconnect', onDisconnect);
  };
}
