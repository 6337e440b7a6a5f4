#!/usr/bin/env node
// The `weft` command. Runs the built CLI (npm run build) so start-up stays fast.
import('../dist/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli.js')) {
    console.error('weft: the CLI is not built yet; run `npm run build` in the repository root first');
    process.exit(1);
  }
  throw err;
});
