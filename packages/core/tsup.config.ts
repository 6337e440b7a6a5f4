import { libraryConfig } from '../../tsup.base';

// Optional backends are loaded by name at run time, never bundled.
export default libraryConfig({ external: ['@tensorflow/tfjs-backend-webgpu', 'webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'] });
