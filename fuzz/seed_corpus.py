#!/usr/bin/env python3
"""Writes the fixed seed corpus of the fuzz targets into fuzz/corpus/<target>/.

Small inputs in each target's input layout (see the targets' headers), made from the shared
corpus's signature vectors and from the *shapes* of a few real payloads (one per event the
router knows: keys kept, strings cut to 24 characters, arrays to one item, nesting to three
levels), never copies of the shared corpus files. Deterministic: rerunning it on the same
shared corpus rewrites the same files.

    python3 fuzz/seed_corpus.py [SHARED_CORPUS_DIR]   # default $WEBHOOK_CORPUS_DIR or ../shared/corpus
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
CORPUS = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WEBHOOK_CORPUS_DIR", FUZZ.parent.parent / "shared" / "corpus")
)
# Index = the first input byte of payload_parse (its EVENTS list).
EVENTS = ["pull_request", "check_run", "check_suite", "push", "ping", "installation",
          "installation_repositories", "issue_comment"]
# Index = the name byte of delivery_headers (its NAMES list).
NAMES = ["x-github-delivery", "x-github-event", "x-github-hook-id",
         "x-github-hook-installation-target-type", "x-github-hook-installation-target-id",
         "x-hub-signature-256", "x-hub-signature", "content-type", "user-agent",
         "x-github-enterprise-host", "content-length", "authorization"]


def write(target, data):
    name = hashlib.sha1(data).hexdigest()[:16]
    (FUZZ / "corpus" / target / name).write_bytes(data)


def shape(value, depth=0):
    """The structure of a JSON value with small leaves."""
    if isinstance(value, dict):
        if depth >= 3:
            return {}
        return {k: shape(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v, depth + 1) for v in value[:1]]
    if isinstance(value, str):
        return value[:24]
    return value


def signature_seeds():
    """signature_header: [header length][header][body]."""
    for line in (CORPUS / "signature-vectors.tsv").read_text().splitlines()[1:]:
        secret, body, header, *_ = line.split("\t")
        value = header.split(": ", 1)[-1].encode()
        if body.startswith("literal:"):
            body = body[len("literal:"):].encode()
        else:
            path = CORPUS / body.split(":", 1)[-1]
            body = path.read_bytes()[:512] if path.is_file() else b""
        for h in (value, value.upper(), value[:20], value + b" ", b""):
            write("signature_header", bytes([len(h) % 128]) + h[:127] + body)


def delivery_seeds():
    """delivery_headers: records of [name index][value length][value]."""
    def record(name, value):
        return bytes([NAMES.index(name), len(value)]) + value

    base = [
        ("x-github-delivery", b"72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-github-event", b"pull_request"),
        ("x-github-hook-id", b"292430182"),
        ("x-github-hook-installation-target-type", b"repository"),
        ("x-github-hook-installation-target-id", b"79929171"),
        ("x-hub-signature-256", b"sha256=" + b"d5" * 32),
        ("content-type", b"application/json"),
        ("user-agent", b"GitHub-Hookshot/044aadd"),
    ]
    write("delivery_headers", b"".join(record(n, v) for n, v in base))
    variants = [
        [("x-github-event", b"ping"), ("x-github-delivery", b"1")],
        [("x-github-delivery", b"a" * 129), ("x-github-event", b"push")],
        [("x-github-delivery", b"x"), ("x-github-event", b"Push!")],
        [("x-github-delivery", b"x"), ("x-github-event", b"push"), ("x-github-hook-id", b"-1x")],
        [("x-github-delivery", b"x"), ("x-github-event", b"push"),
         ("content-type", b"application/x-www-form-urlencoded; charset=utf-8")],
        [("x-github-delivery", b"x"), ("x-github-event", b"push"), ("content-type", b"text/plain")],
        [("x-github-delivery", b"x"), ("x-github-event", b"push"), ("authorization", b"Bearer t"),
         ("x-github-enterprise-host", b"ghe.example.com"), ("content-length", b"12")],
    ]
    for records in variants:
        write("delivery_headers", b"".join(record(n, v) for n, v in records))


def payload_seeds():
    """payload_parse: [event index][body], from the smallest real payload of each event."""
    payloads = CORPUS / "github-payloads"
    for index, event in enumerate(EVENTS):
        files = sorted((payloads / event).glob("*.json"), key=lambda p: p.stat().st_size)
        if not files:
            continue
        for path in files[:1]:
            body = json.dumps(shape(json.loads(path.read_text())), separators=(",", ":"))
            write("payload_parse", bytes([index]) + body.encode())
    # A form-encoded body and bodies that are not objects.
    write("payload_parse", bytes([4]) + b"payload=%7B%22zen%22%3A%22x%22%7D")
    for body in (b"[]", b"null", b"{\"action\":1}", b"{"):
        write("payload_parse", bytes([0]) + body)


def main():
    if not (CORPUS / "signature-vectors.tsv").is_file():
        sys.exit(f"shared corpus not found at {CORPUS} (pass its path or set WEBHOOK_CORPUS_DIR)")
    for target in ("signature_header", "delivery_headers", "payload_parse"):
        shutil.rmtree(FUZZ / "corpus" / target, ignore_errors=True)
        (FUZZ / "corpus" / target).mkdir(parents=True)
    signature_seeds()
    delivery_seeds()
    payload_seeds()
    for target in sorted(os.listdir(FUZZ / "corpus")):
        files = list((FUZZ / "corpus" / target).iterdir())
        print(f"{target}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
