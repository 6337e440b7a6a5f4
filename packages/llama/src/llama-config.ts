export type { LlamaConfig } from '@weft/core';
