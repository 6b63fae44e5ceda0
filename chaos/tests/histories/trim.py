#!/usr/bin/env python3
"""Trim a real `history.json` (schema 2) into a corpus file: the operations of client 0 only,
one acknowledged write in four (with the final reads' verdict on it), the sessions those and the
TTL probes refer to (re-indexed), times rounded to 0.1 ms, error notes cut to 48 characters.
Faults, Sentinel events and the final reads' counts are kept whole.

    trim.py results/chaos-primary-kill-<time>/history.json chaos/tests/histories/primary-kill.json
"""
import json
import sys


def rounded(v):
    if isinstance(v, float):
        return round(v, 1)
    if isinstance(v, list):
        return [rounded(x) for x in v]
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    return v


def main(src, dst):
    h = json.load(open(src))
    h["ops"] = [o for o in h["ops"] if o["client"] == 0]
    fs = h["final_state"]
    kept = [i for i in range(len(h["writes"])) if i % 4 == 0]
    new_write = {old: new for new, old in enumerate(kept)}
    h["writes"] = [h["writes"][i] for i in kept]
    for field in ("lost_writes", "revocations_valid_again"):
        fs[field] = [new_write[i] for i in fs[field] if i in new_write]
    fs["writes_checked"] = min(fs["writes_checked"], len(kept))
    used = sorted({x["session"] for x in h["ops"] + h["writes"] + h["probes"] if x.get("session") is not None})
    new_session = {old: new for new, old in enumerate(used)}
    h["sessions"] = [h["sessions"][i] for i in used]
    for x in h["ops"] + h["writes"] + h["probes"]:
        if x.get("session") is not None:
            x["session"] = new_session[x["session"]]
    for o in h["ops"]:
        if "note" in o:
            o["note"] = o["note"][:48]
    with open(dst, "w") as f:
        json.dump(rounded(h), f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
