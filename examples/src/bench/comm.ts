/** npm run bench:comm — allReduce latency and bandwidth vs plain memory copy, table + JSON. */
import { runCommBench } from '@weft/comm';

await runCommBench({ out: process.argv[2] ?? 'bench-results/comm.json' });
