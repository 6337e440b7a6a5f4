export { createServer, type ServeOptions, type WeftServer } from './server.js';
export type { EngineClient } from './engine-client.js';
export { FIELDS, type FieldRule } from './fields.js';
export { loadChatTemplate, type ChatMessage, type ChatTemplate } from './chat-template.js';
export { ApiError } from './errors.js';
