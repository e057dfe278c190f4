import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BASIC_PUBLISH, SINGLE_CHUNK_BYTES, encodePublish, publishFields, type PublishFields } from './frames.js';

// amqplib's own encoder, the reference: its `lib/` is not in the package's exports, so it is
// loaded by path from where the package is installed.
const require = createRequire(import.meta.url);
const lib = join(dirname(require.resolve('amqplib')), 'lib');
const defs = require(join(lib, 'defs.js')) as {
  BasicPublish: number;
  BasicProperties: number;
  encodeMethod(id: number, channel: number, fields: object): Buffer;
  encodeProperties(id: number, channel: number, size: number, fields: object): Buffer;
};
const { makeBodyFrame } = require(join(lib, 'frame.js')) as { makeBodyFrame(channel: number, body: Buffer): Buffer };
const Args = require(join(lib, 'api_args.js')) as { publish(exchange: string, routingKey: string, options?: object): PublishFields };

const FRAME_MAX = 131072;

/** What amqplib writes for this publish. */
function amqplibFrames(channel: number, fields: PublishFields, content: Buffer): Buffer {
  const parts = [defs.encodeMethod(defs.BasicPublish, channel, fields), defs.encodeProperties(defs.BasicProperties, channel, content.length, fields)];
  if (content.length > 0) parts.push(makeBodyFrame(channel, content));
  return Buffer.concat(parts);
}

/** A publish as a channel makes it, encoded both ways. */
function both(exchange: string, routingKey: string, options: object, content: Buffer, channel = 1) {
  const fields = Args.publish(exchange, routingKey, options);
  return { ours: encodePublish(channel, fields, content, FRAME_MAX), theirs: amqplibFrames(channel, fields, content) };
}

const body = Buffer.from('{"from":1,"to":100}');

describe('encodePublish', () => {
  it('agrees with amqplib, byte for byte, on a job as the producer sends it', () => {
    expect(BASIC_PUBLISH).toBe(defs.BasicPublish);
    const { ours, theirs } = both(
      'pipeline.ranges',
      'range.primes',
      {
        correlationId: '20261129T233201Z-abcdef12.17',
        messageId: '20261129T233201Z-abcdef12.17',
        replyTo: 'pipeline.replies.20261129T233201Z-abcdef12',
        contentType: 'application/json',
        persistent: true,
        mandatory: true,
        type: 'pipeline.job.range.v1',
        appId: 'pipeline',
      },
      body,
      3,
    );
    expect(ours?.toString('hex')).toBe(theirs.toString('hex'));
  });

  it('agrees with amqplib on every property, one at a time and all together', () => {
    const each: Record<string, unknown> = {
      contentType: 'application/json',
      contentEncoding: 'gzip',
      headers: {},
      persistent: false,
      deliveryMode: 2,
      priority: 9,
      correlationId: 'c-1',
      replyTo: 'amq.rabbitmq.reply-to',
      expiration: 60000,
      messageId: 'm-1',
      timestamp: 1_764_000_000,
      type: 'pipeline.result.v1',
      userId: 'guest',
      appId: 'prime-filter',
      mandatory: true,
    };
    for (const [key, value] of Object.entries(each)) {
      const { ours, theirs } = both('x', 'k', { [key]: value }, body);
      expect(ours?.toString('hex'), key).toBe(theirs.toString('hex'));
    }
    const { ours, theirs } = both('pipeline.ranges', 'range.all', { ...each, persistent: undefined }, body, 65535);
    expect(ours?.toString('hex')).toBe(theirs.toString('hex'));
    // amqplib's `clusterId` is not an option of publish, but the encoder writes it if given.
    const withCluster = { ...Args.publish('', 'q', {}), clusterId: 'c' };
    expect(encodePublish(1, withCluster, body, FRAME_MAX)?.toString('hex')).toBe(amqplibFrames(1, withCluster, body).toString('hex'));
  });

  it('agrees on an empty body (no body frame), the default exchange, a large timestamp and the longest short strings', () => {
    for (const [exchange, key, options, content] of [
      ['', 'pipeline.replies.b', {}, Buffer.alloc(0)],
      ['', 'q', { timestamp: 2 ** 40 + 5 }, body],
      ['e'.repeat(255), 'k'.repeat(255), { messageId: 'm'.repeat(255) }, body],
    ] as const) {
      const { ours, theirs } = both(exchange, key, options, content);
      expect(ours?.toString('hex')).toBe(theirs.toString('hex'));
    }
  });

  it('agrees right below the size where amqplib starts writing frames separately, and leaves that size to amqplib', () => {
    const fields = Args.publish('', 'q', { contentType: 'application/json' });
    const frame = (n: number) => Buffer.alloc(n, 0x61);
    const overhead = amqplibFrames(1, fields, Buffer.from('a')).length - 1;
    const largest = frame(SINGLE_CHUNK_BYTES - 1 - overhead);
    expect(encodePublish(1, fields, largest, FRAME_MAX)?.toString('hex')).toBe(amqplibFrames(1, fields, largest).toString('hex'));
    expect(encodePublish(1, fields, frame(SINGLE_CHUNK_BYTES - overhead), FRAME_MAX)).toBeUndefined();
    // A body larger than a frame allows (amqplib splits it) is not ours either.
    expect(encodePublish(1, fields, frame(100), 100)).toBeUndefined();
  });

  it('leaves to amqplib what it does not write exactly as amqplib would', () => {
    const declined = [
      { headers: { 'x-reason': 'bad' } },
      { CC: ['a'] },
      { correlationId: 'café' },
      { appId: '服务' },
      { messageId: 'm'.repeat(256) },
      { priority: 256 },
      { deliveryMode: 1.5 },
      { timestamp: 1.5 },
      { timestamp: -1 },
      { type: 42 },
    ];
    for (const options of declined) expect(encodePublish(1, Args.publish('x', 'k', options), body, FRAME_MAX), JSON.stringify(options)).toBeUndefined();
    expect(encodePublish(1, Args.publish('ex\u00e9', 'k', {}), body, FRAME_MAX)).toBeUndefined();
    expect(encodePublish(1, { ...Args.publish('x', 'k', {}), ticket: 7 }, body, FRAME_MAX)).toBeUndefined();
  });

  it('skips properties that are null, as amqplib does', () => {
    const fields = { ...Args.publish('x', 'k', { contentType: 'application/json' }), messageId: null, type: null };
    expect(encodePublish(1, fields, body, FRAME_MAX)?.toString('hex')).toBe(amqplibFrames(1, fields, body).toString('hex'));
  });
});

describe('publishFields', () => {
  const options = [
    {},
    { persistent: true, contentType: 'application/json', correlationId: 'c', replyTo: 'r', messageId: 'm', type: 't', appId: 'a', timestamp: 1_764_000_000 },
    { persistent: false, priority: 3, expiration: 5000, userId: 'guest', contentEncoding: 'br' },
    { deliveryMode: 2 },
    { deliveryMode: true },
    { expiration: '250' },
    { headers: { 'x-pipeline-reason': 'bad', 'x-attempts': 2 }, persistent: true },
  ];

  it('makes the fields amqplib makes for a mandatory publish, but sends no empty headers table', () => {
    for (const o of options) {
      const ours = publishFields('x', 'k', o);
      const theirs = Args.publish('x', 'k', { ...o, mandatory: true });
      expect(ours, JSON.stringify(o)).toBeDefined();
      const { headers: ourHeaders, ...ourRest } = ours!;
      const { headers: theirHeaders, ...theirRest } = theirs;
      expect(ourRest, JSON.stringify(o)).toEqual(theirRest);
      if (o.headers) {
        // amqplib's headers inherit from the options' (Object.create): the encoded bytes are the same.
        expect(amqplibFrames(1, ours!, body).toString('hex')).toBe(amqplibFrames(1, theirs, body).toString('hex'));
      } else {
        expect(ourHeaders).toBeUndefined();
        expect(Object.keys(theirHeaders as object)).toEqual([]);
      }
    }
  });

  it('leaves CC and BCC (which amqplib turns into headers) to amqplib', () => {
    expect(publishFields('x', 'k', { CC: ['a'] })).toBeUndefined();
    expect(publishFields('x', 'k', { BCC: 'b' })).toBeUndefined();
  });
});
