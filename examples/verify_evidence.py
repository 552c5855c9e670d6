"""Checks a Vellum evidence directory with public standards only, no Vellum code.

usage: verify_evidence.py DIR VKEY [KID=HEXKEY ...] [--accept-declared-loss]
needs: pip install rfc8785 cryptography

Per stream: each entry's hash (SHA-256 over 0x00 || RFC 8785 JSON without hash/mac),
the prev links and gapless seq, each mac (HMAC-SHA256 of the 32-byte leaf) when keys
are given, and each checkpoint's Ed25519 signature (C2SP signed note) and Merkle root
(RFC 9162). Prints OK or the first problem, exit 0 or 1.

A stream that retention pruned starts at seq N > 0; it is accepted only when one of its
own entries is a purge record (event_type vellum.retention.purge) declaring last_seq N-1,
whose `hash` is entry N's prev and whose `frontier` (the RFC 9162 compact range of the
pruned leaves) the remaining checkpoints' roots are recomputed from (docs/retention.md).

Entries lost to journal damage leave a gap that a later journal-loss record of the stream
(event_type vellum.journal_loss) declares; the tree resumes from the frontier it declares.
A declared loss fails unless --accept-declared-loss is given (docs/evidence-format.md).
"""
import base64, glob, gzip, hashlib, hmac, json, os, sys
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()

def push(frontier, size, leaf):  # RFC 9162 compact range [0, size) plus one leaf
    for _ in range(len(bin(size)) - len(bin(size).rstrip("1"))):  # trailing ones of size
        leaf = node(frontier.pop(), leaf)
    frontier.append(leaf)

def root(frontier):  # the Merkle tree hash from the perfect subtree roots, largest first
    r = frontier[-1]
    for left in reversed(frontier[:-1]):
        r = node(left, r)
    return r

def fail(msg):
    sys.exit(print("FAILED:", msg) or 1)

accept_loss = "--accept-declared-loss" in sys.argv
args = [a for a in sys.argv[1:] if a != "--accept-declared-loss"]
directory, vkey = args[0], args[1]
keys = {k: bytes.fromhex(v) for k, v in (a.split("=", 1) for a in args[2:])}
name, key_hash, key_b64 = vkey.split("+", 2)  # names never hold "+"; base64 may
public = base64.b64decode(key_b64)[1:]
streams = {}
for path in sorted(glob.glob(os.path.join(directory, "**", "*.jsonl*"), recursive=True)):
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            e = json.loads(line)
            streams.setdefault(e["stream"], []).append((e, f"{path}:{n}"))
for stream, entries in streams.items():
    entries.sort(key=lambda x: x[0]["seq"])
    start, frontier, prev, roots = entries[0][0]["seq"], [], "0" * 64, {}
    if start > 0:  # pruned by retention: a purge record of this stream must declare it
        purges = [e["attributes"] for e, _ in entries if e.get("event_type") == "vellum.retention.purge"
                  and e["attributes"].get("store") != "journal" and e["attributes"].get("last_seq") == start - 1]
        if not purges:
            fail(f"{stream}: seq 0..{start - 1} are missing and no purge record declares them")
        frontier, prev = [bytes.fromhex(h) for h in purges[0]["frontier"]], purges[0]["hash"]
        if len(frontier) != bin(start).count("1") or (start % 2 and frontier[-1].hex() != prev):
            fail(f"{stream}: the purge record's frontier does not fit seq 0..{start - 1}")
        roots[start] = root(frontier)
    losses = [e["attributes"] for e, _ in entries if e.get("event_type") == "vellum.journal_loss"]
    expected, unchecked, broken = start, [], False  # unchecked: sizes of trees over lost leaves
    for e, where in entries:
        seq = e["seq"]
        if seq != expected:  # a gap: only a journal-loss record may declare it
            if seq < expected or not any(l["first_seq"] <= expected and seq - 1 <= l["last_seq"] for l in losses):
                fail(f"{stream}: seq {expected}..{seq - 1} are missing before {where}")
            if not accept_loss:
                fail(f"{stream}: seq {expected}..{seq - 1} are declared lost to journal damage")
            prev, broken = e["prev"], True  # a lost entry's hash and leaf cannot be known
        body = {k: v for k, v in e.items() if k not in ("hash", "mac")}
        leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(body)).digest()
        if e["prev"] != prev or e["hash"] != leaf.hex():
            fail(f"{stream} seq {seq} at {where}: prev or hash does not hold")
        if keys and hmac.new(keys[e["kid"]], leaf, "sha256").hexdigest() != e["mac"]:
            fail(f"{stream} seq {seq} at {where}: mac does not hold")
        if e.get("event_type") == "vellum.journal_loss":  # resume from the declared tree
            a = e["attributes"]
            frontier = [bytes.fromhex(h) for h in a["frontier"]]
            if a["hash"] != e["prev"] or len(frontier) != bin(seq).count("1"):
                fail(f"{stream} seq {seq} at {where}: the journal-loss record does not fit")
            unchecked.append((a["first_seq"] + 1, seq - 1))
            roots[seq], broken = root(frontier), False
        if not broken:
            push(frontier, seq, leaf)
            roots[seq + 1] = root(frontier)
        prev, expected = e["hash"], seq + 1
    for path in glob.glob(os.path.join(directory, "**", "*.note"), recursive=True):
        text, _, sig_line = open(path, encoding="utf-8").read().partition("\n\n")
        origin, size, signed_root = text.splitlines()
        if not origin.endswith("/" + stream):
            continue
        _, signer, sig = sig_line.split()
        sig = base64.b64decode(sig)
        if signer != name or sig[:4].hex() != key_hash:
            fail(f"{path}: not signed by {name}")
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(sig[4:], (text + "\n").encode())
        except Exception:
            fail(f"{path}: bad signature")
        if int(size) < start or any(lo <= int(size) <= hi for lo, hi in unchecked):
            continue  # covers pruned or lost entries: nothing left to check it against
        if base64.b64decode(signed_root) != roots.get(int(size)):
            fail(f"{path}: root does not match entries 0..{size}")
print(f"OK: {sum(len(v) for v in streams.values())} entries in {len(streams)} stream(s)")
