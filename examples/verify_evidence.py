"""Checks a Vellum evidence directory with public standards only, no Vellum code.

usage: verify_evidence.py DIR VKEY [KID=HEXKEY ...]
needs: pip install rfc8785 cryptography

Per stream: each entry's hash (SHA-256 over 0x00 || RFC 8785 JSON without hash/mac),
the prev links and gapless seq, each mac (HMAC-SHA256 of the 32-byte leaf) when keys
are given, and each checkpoint's Ed25519 signature (C2SP signed note) and Merkle root
(RFC 9162). Prints OK or the first problem, exit 0 or 1.
"""
import base64, glob, gzip, hashlib, hmac, json, os, sys
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def mth(leaves):  # RFC 9162 Merkle tree hash over leaf hashes
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()

def fail(msg):
    sys.exit(print("FAILED:", msg) or 1)

directory, vkey = sys.argv[1], sys.argv[2]
keys = {k: bytes.fromhex(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
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
    leaves, prev = [], "0" * 64
    for seq, (e, where) in enumerate(entries):
        body = {k: v for k, v in e.items() if k not in ("hash", "mac")}
        leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(body)).digest()
        if e["seq"] != seq or e["prev"] != prev or e["hash"] != leaf.hex():
            fail(f"{stream} seq {seq} at {where}: seq, prev or hash does not hold")
        if keys and hmac.new(keys[e["kid"]], leaf, "sha256").hexdigest() != e["mac"]:
            fail(f"{stream} seq {seq} at {where}: mac does not hold")
        leaves.append(leaf)
        prev = e["hash"]
    for path in glob.glob(os.path.join(directory, "**", "*.note"), recursive=True):
        text, _, sig_line = open(path, encoding="utf-8").read().partition("\n\n")
        origin, size, root = text.splitlines()
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
        if base64.b64decode(root) != mth(leaves[: int(size)]):
            fail(f"{path}: root does not match entries 0..{size}")
print(f"OK: {sum(len(v) for v in streams.values())} entries in {len(streams)} stream(s)")
