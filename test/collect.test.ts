import { ServiceProcess } from '@amqp-pipeline/devtools';
import { afterAll, describe, expect, it } from 'vitest';
import { amqpUrl, runCli, withChannel } from './helpers.js';

let mapper: ServiceProcess | undefined;
afterAll(async () => {
  await mapper?.stop();
});

describe('results outlive the producer', () => {
  it('when no service is consuming, then the CLI warns, times out with exit 4, and `collect` gets the result once a service starts', async (ctx) => {
    const consumers = await withChannel(async (ch) => (await ch.checkQueue('pipeline.squares')).consumerCount);
    if (consumers > 0) ctx.skip(`pipeline.squares already has ${consumers} consumer(s) on this broker; this test needs it idle`);

    const first = await runCli(['squares', '1', '3', '--timeout', '1', '--json']);
    expect(first.code, first.stderr).toBe(4);
    expect(first.lines).toEqual([]);
    expect(first.stderr).toContain('no service is consuming pipeline.squares');
    const batch = /pipeline collect (\S+)`/.exec(first.stderr)?.[1];
    expect(batch).toBeDefined();

    mapper = new ServiceProcess('square-mapper', { env: { AMQP_URL: amqpUrl() } });
    await mapper.ready;
    const later = await runCli(['collect', batch!, '--json']);
    expect(later.code, later.stderr).toBe(0);
    expect(later.lines).toEqual([
      { batch, id: `${batch}.0`, input: { from: 1, to: 3 }, ok: true, kind: 'squares', squares: [1, 4, 9] },
    ]);
  });
});
