/**
 * What the CLI does when its parent goes away. By default it stops at once
 * (cli.ts: exit 129). A command that has a graceful stop of its own (serve
 * drains) takes it over: under `npx`, a SIGTERM to npm kills npm's `sh -c`
 * and never reaches node, so the parent going away is the only signal the
 * server gets.
 */
let handler: (() => void) | null = null;

/** Take over the reaction to the parent going away (null gives it back). */
export function onParentGone(h: (() => void) | null): void {
  handler = h;
}

/** Called by the CLI's parent watch: true when a command took it over. */
export function parentGoneHandled(): boolean {
  if (!handler) return false;
  handler();
  return true;
}
