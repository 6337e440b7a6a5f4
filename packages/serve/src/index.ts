export { createServer, type ServeOptions, type WeftServer } from './server.js';
export type { EngineClient, EngineStats, FinishReason, GenerateOutput, Prompt, SamplingParamsInit, StreamEvent, TokenizerLike, TokenLogprob } from './engine-client.js';
export { loadChatTemplate, type ChatMessage, type ChatTemplate } from './chat-template.js';
export { ApiError } from './errors.js';
