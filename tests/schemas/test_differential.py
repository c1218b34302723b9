"""Differential test: the worker's validator (`validate-event`, src/event.c) against jsonschema
on generated inputs, not only on the hand-written examples.

From every valid example of provisioning-request and sync-request, a seeded generator makes
mutants one step away: a field removed, an unknown field added, a value replaced by one of
another type, a string lengthened to and past its limits, a number pushed out of its range, an
enum value bent, an array emptied or given duplicates. Each mutant is checked by jsonschema
(with test_schemas' ECMA pattern and date-time corrections) and by the worker in one batch;
the two must agree on valid or invalid for every one. A disagreement is a bug in one of them.

ZW_DIFF_MUTANTS (default 1500 per schema) sets how many; ZW_DIFF_SEED the generator's seed.
"""
import copy
import json
import os
import random

import pytest

from test_schemas import (EXAMPLES_DIR, examples, parse_verdicts, run_validate, validator,
                          worker_binary)

N = int(os.environ.get("ZW_DIFF_MUTANTS", "1500"))
SEED = int(os.environ.get("ZW_DIFF_SEED", "20261203"))

ODD_VALUES = [None, True, False, 0, -1, 1.5, 2**53, -(2**63), 1e300, "", " ", "x" * 300,
              "\u00e9", "\U0001F600", "a\nb", [], [1], {}, {"k": "v"}]


def paths_of(doc, prefix=()):
    """Every (path, value) in doc, the root excluded."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((prefix + (k,), v))
            out += paths_of(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((prefix + (i,), v))
            out += paths_of(v, prefix + (i,))
    return out


def parent_of(doc, path):
    for p in path[:-1]:
        doc = doc[p]
    return doc


def mutate(doc, rng):
    """One mutant of doc (a deep copy changed in one place), or None when that step does not
    apply."""
    doc = copy.deepcopy(doc)
    paths = paths_of(doc)
    if not paths:
        return None
    path, value = rng.choice(paths)
    parent, key = parent_of(doc, path), path[-1]
    step = rng.randrange(9)
    if step == 0:                                   # remove
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif step == 1:                                 # an unknown field beside it
        target = parent if isinstance(parent, dict) else (value if isinstance(value, dict) else None)
        if target is None:
            return None
        target[rng.choice(["extra", "Tenant", "person_", "x-y"])] = rng.choice(ODD_VALUES)
    elif step == 2:                                 # another type
        parent[key] = rng.choice(ODD_VALUES)
    elif step == 3 and isinstance(value, str):      # longer, around the usual limits
        n = rng.choice([63, 64, 65, 127, 128, 129, 199, 200, 201, 254, 255, 256, 320, 2000, 2001])
        parent[key] = (value or "a") * (n // max(1, len(value or "a")) + 1)
        parent[key] = parent[key][:n]
    elif step == 4 and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = rng.choice([value + 1, value - 1, -value, 0, 2**31, 2**63, -1, value * 1000])
    elif step == 5 and isinstance(value, str):      # bent: case, spaces, a character more
        parent[key] = rng.choice([value.upper(), value.lower(), " " + value, value + " ",
                                  value + "\n", value[:-1], value + "-", value.replace("-", "_")])
    elif step == 6 and isinstance(value, list):
        parent[key] = rng.choice([[], value + value[:1], value * 3, [value]])
    elif step == 7 and isinstance(value, dict):
        parent[key] = {}
    elif step == 8 and isinstance(value, str) and ":" in value or step == 8 and isinstance(value, str):
        parent[key] = value + rng.choice(["Z", "+00:00", "T", "x", "0"])
    else:
        return None
    return doc


def mutants(name):
    rng = random.Random(f"{SEED}-{name}")
    bases = [json.loads(p.read_text()) for p in examples(name, "valid")]
    out, seen = [], set()
    tries = 0
    while len(out) < N and tries < N * 20:
        tries += 1
        doc = mutate(rng.choice(bases), rng)
        if doc is None:
            continue
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
        if text in seen:
            continue
        seen.add(text)
        out.append(text)
    return out


@pytest.mark.parametrize("name,flag", [("provisioning-request", []),
                                       ("sync-request", ["--sync"])])
def test_worker_agrees_with_jsonschema_on_mutants(tmp_path, name, flag):
    worker_binary()
    texts = mutants(name)
    paths = []
    for i, text in enumerate(texts):
        p = tmp_path / f"m{i:05d}.json"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    verdicts = {}
    for k in range(0, len(paths), 500):       # a command line of bounded length
        batch = paths[k:k + 500]
        verdicts.update(parse_verdicts(run_validate([*flag, *batch]), batch))
    wrong = []
    for p, text in zip(paths, texts):
        errors = [e.message for e in validator(name).iter_errors(json.loads(text))]
        worker_valid, line = verdicts[p]
        if worker_valid == (not errors):
            continue
        wrong.append(f"  {text[:300]}\n    worker: {line.split(': ', 1)[1].strip()[:200]}\n"
                     f"    jsonschema: {'; '.join(errors)[:200] if errors else 'valid'}")
    valid = sum(1 for v, _ in verdicts.values() if v)
    print(f"{name}: {len(texts)} mutants, {valid} valid by the worker, {len(wrong)} disagreements")
    assert not wrong, (f"{len(wrong)} of {len(texts)} {name} mutants judged differently:\n"
                       + "\n".join(wrong[:15]))
