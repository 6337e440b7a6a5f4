/**
 * A Hugging Face model directory's weights: `model.safetensors`, or shards
 * listed by `model.safetensors.index.json`, or (with no index) every
 * `*.safetensors` in the directory. Each tensor name is routed to its shard.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError } from './errors.js';
import { type TensorInfo, type TensorSource, SafetensorsFile } from './safetensors.js';
import type { LoadedTensor } from './tensor-decode.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export class Checkpoint implements TensorSource {
  private constructor(
    /** The directory (or single file) the checkpoint was opened from. */
    readonly dir: string,
    private readonly shards: SafetensorsFile[],
    private readonly route: Map<string, SafetensorsFile>,
  ) {}

  /** Open a model directory, or a single `.safetensors` file. Only headers are read. */
  static open(dir: string): Checkpoint {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch (cause) {
      throw new CheckpointError(`${dir}: checkpoint directory does not exist`, { cause });
    }
    const make = ({ shards, route }: Opened) => new Checkpoint(dir, shards, route);
    if (stat.isFile()) return make(fromFiles(dir, [dir]));
    if (fs.existsSync(path.join(dir, SINGLE_FILE))) return make(fromFiles(dir, [path.join(dir, SINGLE_FILE)]));
    const index = path.join(dir, INDEX_FILE);
    if (fs.existsSync(index)) return make(fromIndex(dir, index));
    const found = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
    if (found.length === 0) {
      throw new CheckpointError(`${dir}: no weights found (looked for ${SINGLE_FILE}, ${INDEX_FILE} and *.safetensors)`);
    }
    return make(fromFiles(dir, found.map((f) => path.join(dir, f))));
  }

  /** Paths of the shard files, in the order opened. */
  get files(): string[] {
    return this.shards.map((s) => s.path);
  }

  names(): string[] {
    return [...this.route.keys()];
  }

  has(name: string): boolean {
    return this.route.has(name);
  }

  /** The shard file holding `name`. */
  fileOf(name: string): string {
    return this.shard(name).path;
  }

  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }

  read(name: string): LoadedTensor {
    return this.shard(name).read(name);
  }

  narrow(name: string, dim: number, start: number, length: number): LoadedTensor {
    return this.shard(name).narrow(name, dim, start, length);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }

  private shard(name: string): SafetensorsFile {
    const s = this.route.get(name);
    if (s === undefined) throw new CheckpointError(`${this.dir}: checkpoint has no tensor named '${name}'`);
    return s;
  }
}

interface Opened {
  shards: SafetensorsFile[];
  route: Map<string, SafetensorsFile>;
}

/** Open every file, closing those already open if a later one fails. */
function openAll(files: string[]): SafetensorsFile[] {
  const opened: SafetensorsFile[] = [];
  try {
    for (const f of files) opened.push(SafetensorsFile.open(f));
  } catch (err) {
    for (const s of opened) s.close();
    throw err;
  }
  return opened;
}

function fromFiles(dir: string, files: string[]): Opened {
  const shards = openAll(files);
  const route = new Map<string, SafetensorsFile>();
  for (const s of shards) {
    for (const name of s.names()) {
      const other = route.get(name);
      if (other !== undefined) {
        for (const x of shards) x.close();
        throw new CheckpointError(`${dir}: tensor '${name}' is in both ${other.path} and ${s.path}`);
      }
      route.set(name, s);
    }
  }
  return { shards, route };
}

function fromIndex(dir: string, indexPath: string): Opened {
  const weightMap = readWeightMap(indexPath);
  const shardNames = [...new Set(weightMap.values())];
  for (const shard of shardNames) {
    if (!fs.existsSync(path.join(dir, shard))) {
      throw new CheckpointError(`${indexPath}: shard file '${shard}' is listed in weight_map but missing from ${dir}`);
    }
  }
  const shards = openAll(shardNames.map((s) => path.join(dir, s)));
  const byName = new Map(shardNames.map((s, i) => [s, shards[i]!]));
  const route = new Map<string, SafetensorsFile>();
  for (const [tensor, shard] of weightMap) {
    const file = byName.get(shard)!;
    if (!file.has(tensor)) {
      for (const x of shards) x.close();
      throw new CheckpointError(`${indexPath}: weight_map puts '${tensor}' in ${shard}, but that file has no such tensor`);
    }
    route.set(tensor, file);
  }
  return { shards, route };
}

function readWeightMap(indexPath: string): Map<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (cause) {
    throw new CheckpointError(`${indexPath}: cannot read index JSON (${(cause as Error).message})`, { cause });
  }
  const map = typeof parsed === 'object' && parsed !== null ? (parsed as { weight_map?: unknown }).weight_map : undefined;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new CheckpointError(`${indexPath}: missing the weight_map object (tensor name -> shard file)`);
  }
  const out = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      throw new CheckpointError(`${indexPath}: weight_map entry '${tensor}' has bad shard file ${JSON.stringify(shard)}`);
    }
    out.set(tensor, shard);
  }
  if (out.size === 0) throw new CheckpointError(`${indexPath}: weight_map is empty`);
  return out;
}
