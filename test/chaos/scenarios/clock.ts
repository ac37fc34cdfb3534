// Herald's clock stepped minutes forward and back (through the injectable clock, not the
// machine's) while retries wait a minute and attempts are in flight: nothing lost, no retry
// before its time on Herald's clock (in real time, early by no more than the step), no
// delivery in flight twice at once. test/clock.test.ts is its npm-test version.
// And two processes on PostgreSQL whose clocks jump forward past the lease, together or one
// alone, with every delivery of a batch in flight: none is sent twice at once (the npm-test
// version is test/clockJump.test.ts).
import { runClockJump, runClockStep } from '../../helpers/clockStep.ts';
import type { ChaosResult, Engine, Scenario, Size } from '../harness.ts';

async function clockStep(engine: Engine, size: Size): Promise<ChaosResult> {
  const quick = size === 'quick';
  const r = await runClockStep({
    engine, perBatch: quick ? 20 : 1000, subscriptions: 2, holdMs: quick ? 400 : 100, phaseTimeoutMs: quick ? 20_000 : 120_000, midBatch: !quick,
  });
  // Faults the harness's columns have no place for fail the row.
  if (r.earlyOnHeraldClock > 0) throw new Error(`${r.earlyOnHeraldClock} retries came before their time on Herald's clock`);
  if (r.maxRealEarlinessMs > r.maxForwardStepMs) throw new Error(`a retry came ${r.maxRealEarlinessMs} ms early in real time, more than the step`);
  if (r.badTimestamps > 0) throw new Error(`${r.badTimestamps} webhook-timestamps were not on Herald's clock`);
  return {
    scenario: `clock step (${engine})`,
    events: r.events,
    lost: r.lost,
    duplicates: r.duplicates,
    overlaps: r.overlaps,
    unaccepted: r.unexpected,
    storeFaults: r.inconsistent,
    maxRecoverMs: r.recoverMs,
    notes: `steps +2, -3, +4 min with ${r.inFlightAtSteps.join(' and ')} attempts in flight; ${r.waitedForBackStep} due but unsent at the backward step waited for the clock; retries early in real time by at most ${(r.maxRealEarlinessMs / 1000).toFixed(1)} s (largest step ${r.maxForwardStepMs / 1000} s), never on Herald's clock`,
  };
}

async function clockJump(size: Size): Promise<ChaosResult> {
  const quick = size === 'quick';
  const r = await runClockJump(quick ? { rounds: 2, perRound: 32, holdMs: 700 } : { rounds: 9, perRound: 200, holdMs: 1500 });
  if (r.errors.length > 0) throw new Error(`the processes logged errors: ${r.errors.join('\n')}`);
  return r.row;
}

export const scenarios: Scenario[] = [{
  name: 'clock step', engines: ['sqlite', 'postgres'], notInTest: true,
  run: (size, engine) => clockStep(engine, size),
}, {
  name: 'clock jump two processes', engines: ['postgres'], notInTest: true,
  run: (size) => clockJump(size),
}];
