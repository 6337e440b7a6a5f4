/** Test rank entry: the ordinary one, except that rank 1 throws in its forward when the batch holds token POISON (a real rank failure mid-step). */
import type { RankContext } from '@weft/comm';
import type { ForwardInput, IntermediateTensors } from '@weft/layers';
import { runRank } from '../rank-loop.js';
import { modelRegistration } from '../registry.js';

export const POISON = 499;
export const FAILING_RANK = 1;

export function main(ctx: RankContext): Promise<void> {
  return runRank(ctx, async (dir, state, args) => {
    const model = await modelRegistration(args.architecture).createModel(dir, state, {});
    if (ctx.rank !== FAILING_RANK) return model;
    const forward = model.forward.bind(model);
    model.forward = async (input: ForwardInput, intermediate: IntermediateTensors | null) => {
      if ((await input.inputIds.data()).includes(POISON)) throw new Error('deliberate failure in forward');
      return forward(input, intermediate);
    };
    return model;
  });
}
