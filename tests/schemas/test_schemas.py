"""The JSON Schemas in schemas/ and their examples, and the worker's agreement with them.

(a) every schema is valid under the 2020-12 metaschema;
(b) every example under schemas/examples/<schema>/valid passes its schema and every one
    under .../invalid fails it (jsonschema, format assertion on);
(c) `$ZENDESK_WORKER validate-event` calls each provisioning-request example valid or invalid
    exactly as jsonschema does (and `validate-event --sync` for sync-request examples).

Environment: ZW_SCHEMAS_DIR (default: schemas/ beside tests/), ZENDESK_WORKER (the built
binary; required).

Two places where Python's jsonschema departs from the specs are corrected here, so that (b)
and (c) test the specs' meaning, which is what the C validator implements:
- `pattern` is an ECMA-262 regular expression. Python's `re` lets `$` match before a trailing
  newline ("acme\\n" would match ^...$) and its `\\s` is not ECMA's set; the pattern keyword is
  overridden to translate those two before matching.
- format "date-time" is RFC 3339 section 5.6 (with the day checked against the month and leap
  years, and a leap second allowed only at 23:59:60 UTC, as in the JSON Schema test suite).
  jsonschema checks it only when rfc3339-validator is installed, which rejects every leap second
  and accepts a trailing newline; the checker here is used instead, so no extra package is needed.
- An example that is not JSON (RFC 8259: NaN, a BOM, trailing text) is invalid under every
  schema; Python's json module would accept NaN, so it is refused explicitly.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

SCHEMAS_DIR = Path(
    os.environ.get("ZW_SCHEMAS_DIR") or Path(__file__).resolve().parents[2] / "schemas"
)
EXAMPLES_DIR = SCHEMAS_DIR / "examples"

# Every schema, and the fewest examples each must have (valid, invalid).
SCHEMAS = {
    "provisioning-request": (8, 15),
    "sync-request": (3, 5),
    "result": (3, 5),
    "user-snapshot": (3, 5),
    "dlq-headers": (2, 5),
}
ID_PREFIX = "https://zendesk-worker.dev/schemas/"
METASCHEMA = "https://json-schema.org/draft/2020-12/schema"

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
WORKER_REASONS = {
    "too_large", "not_json", "not_object", "schema", "missing_field", "wrong_type",
    "invalid_value", "unknown_field", "unknown_tenant",
}

# --------------------------------------------------------------------------- ECMA-262 patterns

# ECMA-262 \s: WhiteSpace and LineTerminator code points.
_ECMA_SPACE = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"


def ecma_to_python(pattern):
    """Rewrites an ECMA-262 pattern (without flags) into a Python `re` pattern with the same
    meaning for the constructs these schemas use: `$` (end of input only), `\\s` and `\\S`."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "s":
                out.append(_ECMA_SPACE if in_class else "[" + _ECMA_SPACE + "]")
            elif nxt == "S":
                if in_class:
                    raise ValueError(f"\\S inside a class is not supported: {pattern!r}")
                out.append("[^" + _ECMA_SPACE + "]")
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            # A leading ^ or ] belongs to the class, not to its end.
            if pattern[i + 1:i + 2] == "^":
                out.append("[^")
                i += 2
                continue
        elif c == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _ecma_pattern(validator, patrn, instance, schema):
    if validator.is_type(instance, "string") and not re.search(ecma_to_python(patrn), instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


SpecValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def test_ecma_pattern_translation():
    tenant = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    assert re.search(ecma_to_python(tenant), "acme")
    assert not re.search(ecma_to_python(tenant), "acme\n")
    assert re.search(tenant, "acme\n"), "Python's $ quirk is gone; the override may be dropped"
    email = "^[^@\\s]+@[^@\\s]+$"
    assert re.search(ecma_to_python(email), "jane@acme.example")
    assert not re.search(ecma_to_python(email), "jane@acme.example\n")
    assert not re.search(ecma_to_python(email), "jane\u3000doe@acme.example")
    # U+001C is whitespace to Python's str.isspace, not to ECMA-262.
    assert re.search(ecma_to_python(email), "jane\x1cdoe@acme.example")


# --------------------------------------------------------------------------- loading


def schema_path(name):
    return SCHEMAS_DIR / f"{name}.schema.json"


def load_schema(name):
    with open(schema_path(name), encoding="utf-8") as f:
        return json.load(f)


_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,
)


def rfc3339_date_time(instance):
    """RFC 3339 date-time (section 5.6 grammar, section 5.7 restrictions)."""
    if not isinstance(instance, str):
        return True
    m = _DATE_TIME.match(instance)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    sign, off_h, off_m = m.group(7), int(m.group(8) or 0), int(m.group(9) or 0)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 60:
        return False
    if off_h > 23 or off_m > 59:
        return False
    leap_year = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap_year else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    if not 1 <= day <= days:
        return False
    if second == 60:
        # A leap second is the last second of a UTC day: 23:59:60Z.
        offset = (off_h * 60 + off_m) * (-1 if sign == "-" else 1)
        if (hour * 60 + minute - offset) % 1440 != 23 * 60 + 59:
            return False
    return True


def format_checker():
    checker = FormatChecker()
    checker.checks("date-time")(rfc3339_date_time)
    return checker


def test_rfc3339_date_time():
    for good in ["2026-11-28T10:00:00Z", "2026-11-28t10:00:00.5z", "1996-12-19T16:39:57-08:00",
                 "2028-02-29T00:00:00Z", "1998-12-31T23:59:60Z", "1998-12-31T15:59:60.1-08:00",
                 "1999-01-01T00:59:60+01:00", "0000-01-01T00:00:00Z"]:
        assert rfc3339_date_time(good), good
    for bad in ["2026-11-28T10:00:00", "2026-11-28 10:00:00Z", "2026-11-28T10:00:00Z\n",
                "2027-02-29T10:00:00Z", "2026-04-31T10:00:00Z", "2026-13-01T10:00:00Z",
                "2026-11-28T24:00:00Z", "2026-11-28T10:00:00+24:00", "1998-12-31T23:58:60Z",
                "2026-11-28T10:00:00.Z", "2026-11-28T10:00Z", "+2026-11-28T10:00:00Z",
                "2026-11-28T10:00:00+0100", "２026-11-28T10:00:00Z"]:
        assert not rfc3339_date_time(bad), bad


def validator(name):
    return SpecValidator(load_schema(name), format_checker=format_checker())


def examples(name, kind):
    return sorted((EXAMPLES_DIR / name / kind).glob("*.json"))


def example_params(names=SCHEMAS, kinds=("valid", "invalid")):
    return [
        pytest.param(name, kind, path, id=f"{name}/{kind}/{path.name}")
        for name in names
        for kind in kinds
        for path in examples(name, kind)
    ]


def load_example(path):
    """(document, None), or (None, why) when the file is not JSON (RFC 8259, UTF-8). Of
    duplicate keys the last wins, as in json-c."""

    def no_constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text, parse_constant=no_constant), None
    except (UnicodeDecodeError, ValueError) as e:
        return None, f"not JSON: {e}"


def schema_errors(name, path):
    """jsonschema's verdict on an example: a list of messages, empty when valid."""
    doc, err = load_example(path)
    if err:
        return [err]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(name).iter_errors(doc)
    ]


# --------------------------------------------------------------------------- (a) the schemas


def test_every_schema_file_is_listed():
    found = {p.name[: -len(".schema.json")] for p in SCHEMAS_DIR.glob("*.schema.json")}
    assert found == set(SCHEMAS), "a schema file without an entry in SCHEMAS (or the reverse)"
    assert {p.name for p in EXAMPLES_DIR.iterdir() if p.is_dir()} == set(SCHEMAS)


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_2020_12(name):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == METASCHEMA
    assert schema["$id"] == f"{ID_PREFIX}{name}.schema.json"
    assert schema.get("title") and schema.get("description")


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_property_is_described(name):
    """Every named property, at any depth, carries a description."""
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for prop, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub:
                    missing.append(f"{where}/properties/{prop}")
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}/{i}")

    walk(load_schema(name), "#")
    # Properties inside if/then only restate a rule; they need no description of their own.
    missing = [m for m in missing if "/if/" not in m and "/then/" not in m]
    assert not missing, f"properties without a description: {missing}"


@pytest.mark.parametrize("name", SCHEMAS)
def test_enough_examples(name):
    want_valid, want_invalid = SCHEMAS[name]
    assert len(examples(name, "valid")) >= want_valid
    assert len(examples(name, "invalid")) >= want_invalid


# --------------------------------------------------------------------------- (b) the examples


@pytest.mark.parametrize("name,kind,path", example_params())
def test_example(name, kind, path):
    errors = schema_errors(name, path)
    if kind == "valid":
        assert not errors, f"{path} should be valid: {errors}"
    else:
        assert errors, f"{path} should be invalid under {name}.schema.json but passes"


# --------------------------------------------------------------------------- (c) the worker


def worker_binary():
    exe = os.environ.get("ZENDESK_WORKER")
    if not exe:
        pytest.fail(
            "ZENDESK_WORKER is not set: point it at the built zendesk-worker binary "
            "(ctest sets it; by hand: ZENDESK_WORKER=build/src/zendesk-worker pytest tests/schemas)"
        )
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        pytest.fail(f"ZENDESK_WORKER={exe} is not an executable file")
    return exe


def run_validate(args):
    return subprocess.run(
        [worker_binary(), "validate-event", *map(str, args)],
        capture_output=True, text=True, timeout=60,
    )


def split_output(proc, paths):
    """validate-event's output cut into one piece per file, in order: {path: text}. A piece
    is one line unless the worker printed a raw line break inside its message."""
    out, pieces, pos = proc.stdout, {}, 0
    for i, path in enumerate(paths):
        prefix = f"{path}: "
        assert out.startswith(prefix, pos), (
            f"expected the line for {path} at offset {pos} of validate-event's output:\n"
            f"{out[pos:pos + 300]!r}\nstderr:\n{proc.stderr}"
        )
        nxt = out.find(f"\n{paths[i + 1]}: ", pos) + 1 if i + 1 < len(paths) else len(out)
        assert nxt > pos, f"no line for {paths[i + 1]} after {path}:\n{out[pos:pos + 300]!r}"
        pieces[path] = out[pos:nxt]
        pos = nxt
    assert pos == len(out), f"unexpected output after the last file: {out[pos:]!r}"
    return pieces


def parse_verdicts(proc, paths):
    """Maps each path to (valid?, text) from validate-event's output, checking its form:
    `FILE: valid` or `FILE: invalid: <reason>: <message>`."""
    verdicts = {}
    for path, piece in split_output(proc, paths).items():
        rest = piece[len(f"{path}: "):].rstrip("\n")
        if rest == "valid":
            verdicts[path] = (True, piece)
            continue
        m = re.fullmatch(r"invalid: ([a-z_]+): (.+)", rest, re.DOTALL)
        assert m, f"not in the form 'FILE: invalid: <reason>: <message>': {piece!r}"
        assert m.group(1) in WORKER_REASONS, f"unknown reason {m.group(1)!r} in {piece!r}"
        verdicts[path] = (False, piece)
    return verdicts


def all_examples(name):
    return examples(name, "valid") + examples(name, "invalid")


# Examples on which today's worker is known to depart from the schema. Each is a bug in the
# worker's validator (src/event.c), not in the schema: it shows as xfail until fixed, then as
# XPASS, and its entry should then be removed. Keep this list short and explained.
KNOWN_DISAGREEMENTS = {}


# Examples for which today's worker prints more than one line (the same rule as above).
KNOWN_MULTILINE = {}


def agreement_params(name):
    return [
        pytest.param(path, id=f"{name}/{kind}/{path.name}")
        for kind in ("valid", "invalid")
        for path in examples(name, kind)
    ]


def check_agreement(name, verdicts, path):
    worker_valid, line = verdicts[path]
    errors = schema_errors(name, path)
    if worker_valid == (not errors):
        return
    known = KNOWN_DISAGREEMENTS.get(str(path.relative_to(EXAMPLES_DIR)))
    if known:
        pytest.xfail(f"known disagreement: {known}")
    pytest.fail(
        f"the worker and {name}.schema.json disagree on {path.relative_to(EXAMPLES_DIR)}:\n"
        f"    worker:     {line.split(': ', 1)[1].rstrip()}\n"
        f"    jsonschema: {'; '.join(errors) if errors else 'valid'}",
        pytrace=False,
    )


def test_zendesk_worker_is_set():
    worker_binary()


@pytest.fixture(scope="module")
def provisioning_run():
    paths = all_examples("provisioning-request")
    return paths, run_validate(paths)


@pytest.fixture(scope="module")
def provisioning_verdicts(provisioning_run):
    paths, proc = provisioning_run
    return parse_verdicts(proc, paths)


def test_worker_output_form(provisioning_run):
    """One line per file, in order, in the documented form; exit 0 or 65 accordingly."""
    paths, proc = provisioning_run
    verdicts = parse_verdicts(proc, paths)
    want_rc = EX_OK if all(v for v, _ in verdicts.values()) else EX_DATAERR
    assert proc.returncode == want_rc, (
        f"validate-event exited {proc.returncode}, expected {want_rc}; stderr:\n{proc.stderr}"
    )
    multi = [str(p.relative_to(EXAMPLES_DIR)) for p, (_, text) in verdicts.items()
             if text.count("\n") != 1]
    unknown = [m for m in multi if m not in KNOWN_MULTILINE]
    assert not unknown, f"validate-event printed more than one line for {unknown}"
    if multi:
        pytest.xfail(f"known: {'; '.join(KNOWN_MULTILINE[m] for m in multi)}")


@pytest.mark.parametrize("path", agreement_params("provisioning-request"))
def test_worker_agrees_on_provisioning_request(provisioning_verdicts, path):
    check_agreement("provisioning-request", provisioning_verdicts, path)


@pytest.mark.parametrize(
    "kind,want_rc", [("valid", EX_OK), ("invalid", EX_DATAERR)],
)
def test_worker_exit_code(kind, want_rc):
    """0 when every file is valid, 65 as soon as one is not."""
    paths = [p for p in examples("provisioning-request", "valid")
             if str(p.relative_to(EXAMPLES_DIR)) not in KNOWN_DISAGREEMENTS]
    if kind == "invalid":
        paths = paths + [EXAMPLES_DIR / "provisioning-request/invalid/missing-event-id.json"]
    proc = run_validate(paths)
    assert proc.returncode == want_rc, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def sync_verdicts():
    paths = all_examples("sync-request")
    proc = run_validate(["--sync", *paths])
    # --sync is part of the command line (README.md, "Commands"): a usage error (64) is a
    # regression to fail on, never a reason to skip the agreement checks.
    assert proc.returncode != EX_USAGE, (
        f"validate-event --sync exited 64 (usage): {proc.stderr.strip()[:300]}")
    verdicts = parse_verdicts(proc, paths)
    want_rc = EX_OK if all(v for v, _ in verdicts.values()) else EX_DATAERR
    assert proc.returncode == want_rc, proc.stderr
    return verdicts


@pytest.mark.parametrize("path", agreement_params("sync-request"))
def test_worker_agrees_on_sync_request(sync_verdicts, path):
    check_agreement("sync-request", sync_verdicts, path)
