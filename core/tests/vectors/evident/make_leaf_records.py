#!/usr/bin/env python3
"""Writes leaf-records.json: leaf record vectors made from docs/FORMAT.md alone.

An independent encoder (Python standard library only), so the Rust decoder is checked
against the specification, not against itself. Run from this folder:
    python3 make_leaf_records.py > leaf-records.json
"""
import base64
import hashlib
import json
import struct


def envelope_bytes(payload_type: bytes, payload: bytes, sigs):
    out = struct.pack(">H", len(payload_type)) + payload_type
    out += struct.pack(">I", len(payload)) + payload
    out += struct.pack(">H", len(sigs))
    for keyid, sig in sigs:
        out += struct.pack(">H", len(keyid)) + keyid
        out += struct.pack(">H", len(sig)) + sig
    return out


def record(index, time_ns, prev, kind, env, magic=b"EVLR", version=1):
    return magic + bytes([version]) + struct.pack(">Qq", index, time_ns) + prev + bytes([kind]) + env


def leaf_hash(rec):
    return hashlib.sha256(b"\x00" + rec).digest()


with open("../dsse/single-signature.json") as f:
    dsse = json.load(f)["envelope"]
payload = base64.b64decode(dsse["payload"])
ptype = dsse["payloadType"].encode()
sigs = [(s["keyid"].encode(), base64.b64decode(s["sig"])) for s in dsse["signatures"]]
env = envelope_bytes(ptype, payload, sigs)

valid = []
r0 = record(0, 1764150000123456789, bytes(32), 1, env)
valid.append(("entry 0: an attestation, previous hash all zeros", r0, 0, 1764150000123456789, bytes(32), "attestation"))
r1 = record(1, 1764150000223456789, leaf_hash(r0), 2, envelope_bytes(b"application/vnd.evident.registry+json", b'{"op":"example"}', [(b"", bytes(range(64)))]))
valid.append(("entry 1: a registry entry chained to entry 0, empty keyid", r1, 1, 1764150000223456789, leaf_hash(r0), "registry"))
r2 = record(2, -1, leaf_hash(r1), 3, envelope_bytes(b"t", b"", [(b"k1", b"\x01"), (b"k2", b"")]))
valid.append(("entry 2: a policy entry, negative time, empty payload, two signatures of odd lengths", r2, 2, -1, leaf_hash(r1), "policy"))
material = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}'
r3 = record(3, 1764150000323456789, leaf_hash(r2), 1, env + struct.pack(">I", len(material)) + material, version=2)
valid.append(("entry 3: version 2, an attestation with Sigstore material after the envelope", r3, 3, 1764150000323456789, leaf_hash(r2), "attestation"))

invalid = [
    ("truncated in the header", r0[:30], "truncated"),
    ("truncated in the payload", r0[:200], "truncated"),
    ("truncated by one byte", r0[:-1], "truncated"),
    ("one trailing byte", r0 + b"\x00", "trailing"),
    ("version 3", record(0, 0, bytes(32), 1, env, version=3), "version"),
    ("version 2 without the Sigstore material length", record(0, 0, bytes(32), 1, env, version=2), "truncated"),
    ("version 2 with empty Sigstore material", record(0, 0, bytes(32), 1, env + struct.pack(">I", 0), version=2), "empty sigstore"),
    ("version 2 with material shorter than its length", record(0, 0, bytes(32), 1, env + struct.pack(">I", 10) + b"{}", version=2), "truncated"),
    ("version 0", record(0, 0, bytes(32), 1, env, version=0), "version"),
    ("wrong magic", record(0, 0, bytes(32), 1, env, magic=b"EVLX"), "magic"),
    ("entry kind 0", record(0, 0, bytes(32), 0, env), "kind"),
    ("entry kind 4", record(0, 0, bytes(32), 4, env), "kind"),
    ("zero signatures", record(0, 0, bytes(32), 1, envelope_bytes(ptype, payload, [])), "no signatures"),
    ("payload type not UTF-8", record(0, 0, bytes(32), 1, envelope_bytes(b"\xff\xfe", payload, sigs)), "utf-8"),
    ("empty input", b"", "truncated"),
]

out = {
    "description": "Evident leaf records (docs/FORMAT.md section 1), made by make_leaf_records.py",
    "valid": [
        {
            "description": d,
            "record_hex": r.hex(),
            "leaf_hash_hex": leaf_hash(r).hex(),
            "index": i,
            "integrated_time_nanos": t,
            "previous_leaf_hash_hex": p.hex(),
            "kind": k,
        }
        for d, r, i, t, p, k in valid
    ],
    "invalid": [{"description": d, "record_hex": r.hex(), "error": e} for d, r, e in invalid],
}
print(json.dumps(out, indent=2))
