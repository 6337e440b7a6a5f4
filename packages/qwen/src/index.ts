export { registration } from './registration.js';
