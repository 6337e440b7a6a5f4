import { libraryConfig } from '../../tsup.base';

// Every entry lands flat in dist/ (chunks too), which is how the launcher
// finds worker-main.js from import.meta.url.
export default libraryConfig({
  entry: { index: 'src/index.ts', 'worker-main': 'src/worker-main.ts' },
  dts: { entry: { index: 'src/index.ts' } },
});
