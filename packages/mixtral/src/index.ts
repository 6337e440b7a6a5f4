export * from './mixtral.js';
export { registration, type MixtralRankOptions } from './registration.js';
