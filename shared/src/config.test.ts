import { describe, expect, it } from 'vitest';
import { brokerUrls, brokerUser, userOfUrl, loadConfig, redactUrl, replyQueueType, ROLE_SERVICE_USERS, serviceUsers } from './config.js';
import { ErrorCodes, PipelineError } from './errors.js';

describe('loadConfig', () => {
  it('when the environment is empty, then every setting has its documented default', () => {
    const c = loadConfig({});
    expect(c.AMQP_URL).toBe('amqp://guest:guest@127.0.0.1:5672');
    expect(c.HEARTBEAT_SECONDS).toBe(5);
    expect(c.MAX_RANGE_WIDTH).toBe(10_000_000);
    expect(c.PREFETCH).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('when a service default is given, then the environment still wins over it', () => {
    expect(loadConfig({}, { PREFETCH: '64' }).PREFETCH).toBe(64);
    expect(loadConfig({ PREFETCH: '8' }, { PREFETCH: '64' }).PREFETCH).toBe(8);
  });

  it('when AMQP_URL_ORDER is unset, given or wrong, then it is random, given, or an error that names the choices', () => {
    expect(loadConfig({}).AMQP_URL_ORDER).toBe('random');
    expect(loadConfig({ AMQP_URL_ORDER: 'given' }).AMQP_URL_ORDER).toBe('given');
    expect(() => loadConfig({ AMQP_URL_ORDER: 'first' })).toThrow(/AMQP_URL_ORDER.*must be random or given/);
  });

  it('when several settings are wrong, then one error lists them all, with a stable code', () => {
    let err: unknown;
    try {
      loadConfig({ AMQP_URL: 'http://nope', PREFETCH: '0', LOG_LEVEL: 'loud' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PipelineError);
    expect((err as PipelineError).code).toBe(ErrorCodes.CONFIG);
    const message = (err as PipelineError).message;
    expect(message).toContain('AMQP_URL');
    expect(message).toContain('PREFETCH');
    expect(message).toContain('LOG_LEVEL');
  });

  it('when a URL carries a password, then redactUrl hides it', () => {
    expect(redactUrl('amqp://user:s3cret@host:5672/vh')).toBe('amqp://user:***@host:5672/vh');
    expect(redactUrl('amqp://host')).toBe('amqp://host');
  });
});

describe('loadConfig with files', () => {
  it('when AMQP_URL_FILE names a file (a mounted secret), then the URL is read from it; a missing file is a config error', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'pipeline-config-'));
    writeFileSync(join(dir, 'url'), 'amqps://svc:secret@broker.example:5671/prod\n');
    expect(loadConfig({ AMQP_URL_FILE: join(dir, 'url') }).AMQP_URL).toBe('amqps://svc:secret@broker.example:5671/prod');
    expect(loadConfig({ AMQP_URL: 'amqp://a', AMQP_URL_FILE: join(dir, 'url') }).AMQP_URL).toBe('amqp://a');
    expect(() => loadConfig({ AMQP_URL_FILE: join(dir, 'missing') })).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG }));
  });
});

describe('AMQP_URL with the nodes of a cluster', () => {
  const three = 'amqp://a:p,w@n1:5672, amqp://a:q@n2:5673/vh ,amqps://a:r@n3';
  it('when several URLs are given, then each is one node, a comma in a password stays in it, and blanks are dropped', () => {
    expect(brokerUrls(three)).toEqual(['amqp://a:p,w@n1:5672', 'amqp://a:q@n2:5673/vh', 'amqps://a:r@n3']);
    expect(brokerUrls(' amqp://x ')).toEqual(['amqp://x']);
    expect(loadConfig({ AMQP_URL: three }).AMQP_URL).toBe(three);
  });

  it('when one entry is not an amqp URL, then the configuration is refused and says how to write it', () => {
    expect(() => loadConfig({ AMQP_URL: 'amqp://n1,http://n2' })).toThrow(/AMQP_URL: must be amqp:\/\/ or amqps:\/\/ URLs \(several, comma-separated/);
  });

  it('when URLs are logged, then every password is masked', () => {
    expect(redactUrl(three)).toBe('amqp://a:***@n1:5672,amqp://a:***@n2:5673/vh,amqps://a:***@n3');
  });

  it('when several nodes are named, then reply queues are quorum queues unless REPLY_QUEUE_TYPE says otherwise', () => {
    expect(replyQueueType(loadConfig({ AMQP_URL: 'amqp://n1' }))).toBe('classic');
    expect(replyQueueType(loadConfig({ AMQP_URL: three }))).toBe('quorum');
    expect(replyQueueType(loadConfig({ AMQP_URL: three, REPLY_QUEUE_TYPE: 'classic' }))).toBe('classic');
    expect(replyQueueType(loadConfig({ AMQP_URL: 'amqp://n1', REPLY_QUEUE_TYPE: 'quorum' }))).toBe('quorum');
  });
});

describe('the broker user and whose results are taken', () => {
  it('when the URLs name different users, then the configuration is refused and says why (a process signs with one user)', () => {
    expect(() => loadConfig({ AMQP_URL: 'amqp://a:x@n1,amqp://b:y@n2' })).toThrow(/AMQP_URL: names several users \(a, b\).*give every URL the same user/);
    // No user in a URL means guest (amqplib's default): the same as naming guest.
    expect(brokerUser(loadConfig({ AMQP_URL: 'amqp://n1,amqp://guest:guest@n2' }))).toBe('guest');
    expect(brokerUser(loadConfig({ AMQP_URL: 'amqp://al%40ice:pw@n1' }))).toBe('al@ice');
    // amqplib's own rule, so the user_id signed is the user logged in: a password alone means user "".
    expect(userOfUrl('amqp://:pw@n1')).toBe('');
    expect(userOfUrl('amqp://a%zz:pw@n1')).toBe('a%zz');
  });

  it('when SERVICE_USERS is unset, then the definitions roles are required for their producer user and nothing for others', () => {
    expect(serviceUsers(loadConfig({ AMQP_URL: 'amqp://producer:pw@n1' }))).toEqual({ primes: 'prime-filter', squares: 'square-mapper', title: 'title-fetcher' });
    expect(serviceUsers(loadConfig({ AMQP_URL: 'amqp://guest:guest@n1' }))).toBe('off');
    expect(serviceUsers(loadConfig({ AMQP_URL: 'amqp://producer:pw@n1', SERVICE_USERS: 'off' }))).toBe('off');
    expect(serviceUsers(loadConfig({ AMQP_URL: 'amqp://n1', SERVICE_USERS: 'roles' }))).toBe(ROLE_SERVICE_USERS);
  });

  it('when SERVICE_USERS names a user per kind, then it is taken (titles or title), and a missing or unknown kind is refused with the form to use', () => {
    expect(serviceUsers(loadConfig({ AMQP_URL: 'amqp://n1', SERVICE_USERS: 'primes=p, squares=s,titles=t' }))).toEqual({ primes: 'p', squares: 's', title: 't' });
    expect(() => loadConfig({ SERVICE_USERS: 'primes=p,squares=s' })).toThrow(/SERVICE_USERS: names no user for title/);
    expect(() => loadConfig({ SERVICE_USERS: 'cubes=c' })).toThrow(/SERVICE_USERS: must be roles, off, or primes=USER,squares=USER,title=USER \("cubes=c"/);
  });
});
