// Started detached by startNodeCluster: waits for the test process that owns the node to end
// and, if it ended without stop(), tears the node down from its state file.
//   node test/harness/node-reaper.ts <owner pid> <owner start time>
import { cleanUpStaleNode, isAlive, readState } from './node-host.ts';

const owner = { name: 'owner', pid: Number(process.argv[2]), start: process.argv[3] ?? '' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (;;) {
  const state = await readState();
  // stop() ran (no state), or another owner holds the node now: nothing left for us.
  if (!state || state.owner.pid !== owner.pid || state.owner.start !== owner.start) break;
  if (!isAlive(owner)) {
    await cleanUpStaleNode((line) => console.error(`${new Date().toISOString()} ${line}`));
    break;
  }
  await sleep(1000);
}
