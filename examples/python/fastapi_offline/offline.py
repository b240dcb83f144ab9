"""The offline entry point: each line of a JSONL file ({"text": ...}) is
produced to the application's ingress topic as the HTTP request the
online route takes (POST /predict), keyed by its line number, with no one
waiting; the answers land on the application's output topic keyed the
same, and are printed as they come: key, status, body. Its clients
connect as every Sluice process does: TLS and SASL from the SLUICE_KAFKA_*
environment, plaintext without it.

    python offline.py --brokers HOST:PORT --app moderate [--prefix sluice] texts.jsonl
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from sluice.kafkaauth import client_settings
from sluice.protocol import Envelope, HTTPRequest, Record, headers, new_request, parse_output
from sluice.protocol.names import Namer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--brokers", required=True)
    p.add_argument("--app", required=True)
    p.add_argument("--prefix", default="sluice")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("file")
    a = p.parse_args()
    namer = Namer(a.prefix)
    ingress, output = namer.ingress(a.app), namer.output(a.app)
    with open(a.file) as f:
        lines = [ln for ln in f if ln.strip()]
    # Read the output topic from its end now: only this run's answers.
    kafka = client_settings(a.brokers.split(","))
    c = Consumer({**kafka, "group.id": "offline-" + uuid.uuid4().hex, "enable.auto.commit": False})
    parts = c.list_topics(output, timeout=10).topics[output].partitions
    tps = []
    for n in parts:
        _, hi = c.get_watermark_offsets(TopicPartition(output, n), timeout=10)
        tps.append(TopicPartition(output, n, hi))
    c.assign(tps)
    prod = Producer({**kafka, "enable.idempotence": True})
    run = uuid.uuid4().hex[:8]
    keys = set()
    for i, line in enumerate(lines):
        key = f"{run}-{i}".encode()
        keys.add(key)
        env = Envelope(content_type="application/json", http=HTTPRequest(method="POST", path="/predict"))
        rec = new_request(ingress, key, env, line.strip().encode()).record()
        prod.produce(rec.topic, key=rec.key, value=rec.value, headers=list(rec.headers))
    prod.flush(30)
    deadline = time.monotonic() + a.timeout
    while keys and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error() is not None or m.key() not in keys:
            continue
        out = parse_output(Record(output, m.key(), m.value(), headers.normalize(m.headers())))
        keys.discard(m.key())
        status = out.http.status if out.http is not None else 200
        answer = {"key": m.key().decode(), "status": status, "body": json.loads(out.value or b"null")}
        print(json.dumps(answer, separators=(",", ":")), flush=True)
    c.close()
    if keys:
        print(f"offline: {len(keys)} answers missing after {a.timeout:.0f}s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
