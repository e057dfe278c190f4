"""The Celery peer for `npm run bench -- peers`: the same 100-wide prime ranges as our
prime-filter, on the same RabbitMQ, results through the rpc:// backend.

  python3 celery_peer.py worker          a prefork worker (CELERY_CONCURRENCY processes, default 2)
  python3 celery_peer.py driver          the producer: takes commands on stdin (see driver())

The bench starts both, in a vhost of its own when the management API lets it make one.
"""
import json
import os
import sys
import time

from celery import Celery, group

BROKER = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
app = Celery("peers", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue="peers.celery",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


def _primes_between(lo, hi):
    """Every prime p with lo <= p <= hi: a segment sieve with trial bases up to sqrt(hi)."""
    lo = max(lo, 2)
    if hi < lo:
        return []
    width = hi - lo + 1
    composite = bytearray(width)
    p = 2
    while p * p <= hi:
        start = max(p * p, (lo + p - 1) // p * p)
        composite[start - lo::p] = b"\x01" * len(range(start - lo, width, p))
        p += 1
    return [lo + k for k in range(width) if not composite[k]]


@app.task(name="peers.primes")
def primes(lo, hi):
    return _primes_between(lo, hi)


def _batch(n, offset):
    """n jobs of 100 numbers from offset*100 as one group; (jobs/s, primes found)."""
    started = time.perf_counter()
    result = group(primes.s((offset + i) * 100, (offset + i) * 100 + 99) for i in range(n)).apply_async()
    values = result.get(timeout=600)
    secs = time.perf_counter() - started
    return n / secs, sum(len(v) for v in values)


def _one_at_a_time(m, offset):
    """m jobs, each sent when the one before has answered: milliseconds each."""
    times = []
    for i in range(m):
        started = time.perf_counter()
        primes.apply_async(((offset + i) * 100, (offset + i) * 100 + 99)).get(timeout=60)
        times.append((time.perf_counter() - started) * 1000)
    return times


def driver():
    """Reads commands from stdin, one a line, answers each with a line of JSON:
    "batch N OFFSET" -> {"rate", "primes"}; "one M OFFSET" -> {"ms": [...]}. Ends at EOF."""
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        what, n, offset = line.split()
        if what == "batch":
            rate, found = _batch(int(n), int(offset))
            print(json.dumps({"rate": rate, "primes": found}), flush=True)
        elif what == "one":
            print(json.dumps({"ms": _one_at_a_time(int(n), int(offset))}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        concurrency = os.environ.get("CELERY_CONCURRENCY", "2")
        app.worker_main(["worker", "--pool", "prefork", "-c", concurrency, "--loglevel", "WARNING",
                         "--without-gossip", "--without-mingle", "--without-heartbeat"])
    elif sys.argv[1] == "driver":
        driver()
