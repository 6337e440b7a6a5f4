import { describe, expect, it } from 'vitest';
import { parsePortRange, readLaunchEnv } from './env.js';

const T = { WEFT_JOB_TOKEN: '0123456789abcdef' };

describe('readLaunchEnv', () => {
  it('torchrun / weft launch', () => {
    expect(readLaunchEnv({ ...T, RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '1234' })).toMatchObject({
      style: 'torchrun', rank: 3, worldSize: 4, localRank: 1, masterAddr: '10.0.0.1', masterPort: 1234,
    });
  });
  it('Open MPI, with loopback and port 29500 by default', () => {
    expect(readLaunchEnv({ ...T, OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '2' })).toMatchObject({
      style: 'openmpi', rank: 2, worldSize: 4, localRank: 2, masterAddr: '127.0.0.1', masterPort: 29500,
    });
  });
  it('Slurm needs MASTER_ADDR given', () => {
    const s = { ...T, SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1' };
    expect(() => readLaunchEnv(s)).toThrow(/under Slurm set MASTER_ADDR/);
    expect(readLaunchEnv({ ...s, MASTER_ADDR: 'node-0' })).toMatchObject({ style: 'slurm', rank: 5, worldSize: 8, localRank: 1, masterAddr: 'node-0' });
  });
  it('ranks per host, when the launcher says (sizes TensorFlow thread pools)', () => {
    expect(readLaunchEnv({ ...T, RANK: '1', WORLD_SIZE: '4', LOCAL_WORLD_SIZE: '2' })?.localWorldSize).toBe(2);
    expect(readLaunchEnv({ ...T, OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '6', OMPI_COMM_WORLD_LOCAL_SIZE: '3' })?.localWorldSize).toBe(3);
    expect(readLaunchEnv({ ...T, SLURM_PROCID: '0', SLURM_NTASKS: '6', SLURM_NTASKS_PER_NODE: '2(x3)', MASTER_ADDR: 'n0' })?.localWorldSize).toBeUndefined();
    expect(readLaunchEnv({ ...T, RANK: '0', WORLD_SIZE: '2' })?.localWorldSize).toBeUndefined();
  });
  it('no launcher: null; bad values and a missing token: clear errors', () => {
    expect(readLaunchEnv({})).toBeNull();
    expect(() => readLaunchEnv({ ...T, RANK: '4', WORLD_SIZE: '4' })).toThrow(/outside WORLD_SIZE=4/);
    expect(() => readLaunchEnv({ ...T, RANK: 'x', WORLD_SIZE: '4' })).toThrow(/RANK=x/);
    expect(() => readLaunchEnv({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' })).toThrow(/WEFT_JOB_TOKEN.*mpirun -x WEFT_JOB_TOKEN/);
  });
  it('WEFT_RANK_PORTS: a port or a range for the ranks other than 0 to listen on', () => {
    expect(readLaunchEnv({ ...T, RANK: '1', WORLD_SIZE: '4', WEFT_RANK_PORTS: '29600-29615' })?.listenPorts).toEqual({ first: 29600, last: 29615 });
    expect(readLaunchEnv({ ...T, RANK: '1', WORLD_SIZE: '4', WEFT_RANK_PORTS: '29600' })?.listenPorts).toEqual({ first: 29600, last: 29600 });
    expect(readLaunchEnv({ ...T, RANK: '1', WORLD_SIZE: '4' })?.listenPorts).toBeUndefined();
    for (const bad of ['29615-29600', '0-10', '70000', 'x', '1-2-3', '']) expect(() => parsePortRange(bad, 'WEFT_RANK_PORTS')).toThrow(/WEFT_RANK_PORTS=.* is not a port or a port range/);
    expect(() => readLaunchEnv({ ...T, RANK: '1', WORLD_SIZE: '4', WEFT_RANK_PORTS: '9-1' })).toThrow(/WEFT_RANK_PORTS=9-1/);
  });
});
