/**
 * Gemma 2 through the engine: sliding window 8 on alternate layers, global
 * attention on the others, attention-logit soft-capping (gemma2-tiny). The
 * windowed layers mask through the paged cache; a global layer reads every
 * block, so nothing is freed. See test-support/sliding-window-cases.ts.
 */
import { slidingWindowSuite } from '../test-support/sliding-window-cases.js';

slidingWindowSuite('gemma2-tiny', { window: 8, freed: false });
