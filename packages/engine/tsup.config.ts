import { libraryConfig } from '../../tsup.base';

// The rank entry is loaded by worker threads by URL, so it must be its own file in dist.
export default libraryConfig({ entry: ['src/index.ts', 'src/rank-entry.ts'] });
