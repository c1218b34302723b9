"""Poison messages between good ones: each goes to the DLQ with its original bytes and
headers plus the zw_* headers naming the reason, gets a failed result when its event_id
can be read, and never stalls the partition."""
import json

from conftest import Input, assert_outcome, joiner, new_traceparent, only

MAX_EVENT_BYTES = 2048


def poison_records():
    """(Input, DLQ reason, expected result: error class, or None when no event_id can be
    read and a result is optional)."""
    out = []

    def add(n, value, reason, result_class, key=None):
        headers = [("traceparent", new_traceparent().encode()), ("x-zwit", f"poison-{n}".encode())]
        ev = None
        try:
            parsed = json.loads(value)
            if isinstance(parsed, dict) and isinstance(parsed.get("event_id"), str):
                ev = parsed
        except ValueError:
            pass
        out.append((Input(key or f"acme/BAD{n}", value, headers, ev, good=False), reason, result_class))

    def good_shape(n, **over):
        ev = joiner("acme", f"BAD{n}", "agent")
        ev["event_id"] = f"bad-{n}"
        ev.update(over)
        return ev

    add(1, b'{"schema": "zendesk-worker/provisioning-request/v1", "event_id": "bad-1", "type": ',
        "not_json", None)
    add(2, b"\xff\xfe not even text", "not_json", None)
    add(3, b'["an", "array"]', "not_object", None)
    add(4, json.dumps(good_shape(4, schema="zendesk-worker/provisioning-request/v9")).encode(),
        "schema", "invalid_event")
    missing = good_shape(5)
    del missing["person"]["email"]
    add(5, json.dumps(missing).encode(), "missing_field", "invalid_event")
    add(6, json.dumps(good_shape(6, dry_run="yes")).encode(), "wrong_type", "invalid_event")
    add(7, json.dumps(good_shape(7, type="promotion")).encode(), "invalid_value", "invalid_event")
    add(8, json.dumps(good_shape(8, colour="red")).encode(), "unknown_field", "invalid_event")
    unknown = good_shape(9, tenant="umbrella")
    add(9, json.dumps(unknown).encode(), "unknown_tenant", "unknown_tenant", key="umbrella/BAD9")
    big = good_shape(10)
    big["person"]["user_fields"] = {"bio": "x" * (MAX_EVENT_BYTES + 500)}
    add(10, json.dumps(big).encode(), "too_large", None)
    no_id = good_shape(11)
    del no_id["event_id"]
    add(11, json.dumps(no_id).encode(), "missing_field", None)
    add(12, b"", "not_json", None)
    return out


def test_poison_messages_between_good_ones(make_env):
    env = make_env(partitions=1)
    poison = poison_records()
    goods = [joiner("globex" if i % 3 == 0 else "acme", f"OK{i:02d}", "agent") for i in range(len(poison) + 1)]
    good_inputs = [Input(f"{ev['tenant']}/{ev['person']['external_id']}", json.dumps(ev).encode(),
                         [("traceparent", new_traceparent().encode())], ev) for ev in goods]
    seq = []
    for i, g in enumerate(good_inputs):
        seq.append(g)
        if i < len(poison):
            seq.append(poison[i][0])
    env.start_worker(worker={"max_event_bytes": MAX_EVENT_BYTES})
    env.produce(seq)

    required = [inp for inp, _, cls in poison if cls]
    env.wait_results(good_inputs + required)
    env.wait_dlq(len(poison))
    env.settle(1.5)

    for inp in good_inputs:
        assert_outcome(only(env.results_for(inp), inp), "succeeded", "created", inp)
    dlq_by_input = {}
    for rec in env.dlq:
        dlq_by_input.setdefault(id(rec.input), []).append(rec)
    for inp in good_inputs:
        assert id(inp) not in dlq_by_input, f"a good event went to the DLQ: {inp.key}"
    for inp, reason, cls in poison:
        recs = dlq_by_input.get(id(inp), [])
        assert len(recs) == 1, f"{inp.value[:60]!r}: expected one DLQ record, got {len(recs)}"
        h = recs[0].headers
        assert h["zw_error_reason"] == reason, \
            f"{inp.value[:60]!r}: zw_error_reason {h['zw_error_reason']!r}, expected {reason!r} ({h['zw_error_message']})"
        assert h["zw_source_partition"] == str(inp.partition) and h["zw_source_offset"] == str(inp.offset)
        assert h["zw_error_message"], h
        results = env.results_for(inp)
        if cls:
            res = only(results, inp)
        elif results:
            # No event_id could be read: a result is optional, but must say so.
            res = only(results, inp)
            assert res["event_id"] == "", res
        else:
            continue
        assert res["status"] == "failed", res
        expected_cls = cls or "invalid_event"
        assert res["error"]["class"] == expected_cls, (reason, res)
        if expected_cls == "invalid_event":
            assert res["error"].get("code") == reason, (reason, res)
        assert res["attempts"] == 0 and not res.get("zendesk_request_ids"), res

    # Bad events never reached Zendesk.
    for sub in ("acme", "globex"):
        users = env.sim.users_by_ext(sub)
        assert not [e for e in users if e.startswith("bad")], sorted(users)
        assert set(users) == {g["person"]["external_id"].lower() for g in goods if g["tenant"] == sub}
    env.stop_worker(env.workers[0])
    env.assert_commits_at_end()
