"""Reads Sluice's 1.x channels with pycspr's own SSE client and checks what pycspr can check:
every deploy on `/events/deploys` (decoded by pycspr, then `validate_deploy`: body hash, hash,
approval signatures) and every finality signature on `/events/sigs` (verified with pycspr's
crypto over the block hash and era id, as a 1.x node signs them). Prints a JSON summary; exits 1
when any check fails or nothing was checked.

Usage: python check.py HOST PORT CHANNEL COUNT   (CHANNEL: deploys or sigs; the packages come
from this directory's requirements.txt)
"""

import copy
import json
import sys
import traceback

import pycspr
from pycspr import crypto
from pycspr.types import Deploy

host, port, channel, wanted = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
summary = {"events": 0, "deploys": 0, "signatures": 0, "failures": []}


def fail(kind, error, payload):
    if len(summary["failures"]) < 5:
        summary["failures"].append({"kind": kind, "error": str(error)[:300], "data": json.dumps(payload, default=str)[:300]})
    else:
        summary["failures"].append(kind)


def check_deploy(payload):
    summary["deploys"] += 1
    try:
        # (pycspr decodes in place: the event is kept as it came for the report)
        deploy = pycspr.from_json(copy.deepcopy(payload["DeployAccepted"]), Deploy)
        pycspr.validate_deploy(deploy)
    except Exception as error:
        # 0.12.4's InvalidDeployException is no exception class: raising it raises a TypeError,
        # whose last traceback line names the check that failed.
        fail("deploy (pycspr)", traceback.extract_tb(error.__traceback__)[-1].line, payload)


def check_signature(payload):
    summary["signatures"] += 1
    signature = payload["FinalitySignature"]
    try:
        message = bytes.fromhex(signature["block_hash"]) + int(signature["era_id"]).to_bytes(8, "little")
        key, sig = bytes.fromhex(signature["public_key"]), bytes.fromhex(signature["signature"])
        algo = crypto.get_account_key_algo(key)
        if not crypto.is_signature_valid(message, sig[1:], key[1:], algo):
            fail("finality signature (pycspr)", "invalid signature", payload)
    except Exception as error:
        fail("finality signature (pycspr)", repr(error), payload)


client = pycspr.NodeClient(pycspr.NodeConnection(host=host, port_sse=port))
for event in client.yield_events(pycspr.NodeEventChannel[channel], event_id=1):
    if event.idx is None:
        continue  # the ApiVersion greeting carries no id
    summary["events"] += 1
    if event.typeof == pycspr.NodeEventType.DeployAccepted:
        check_deploy(event.payload)
    elif event.typeof == pycspr.NodeEventType.FinalitySignature:
        check_signature(event.payload)
    if summary["events"] >= wanted:
        break

print(json.dumps(summary))
checked = summary["deploys"] + summary["signatures"]
sys.exit(0 if checked > 0 and not summary["failures"] else 1)
