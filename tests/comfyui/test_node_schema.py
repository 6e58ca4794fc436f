"""Saved workflows depend on node ids, input names and input order (``widgets_values`` is positional): the
schema the server shows must match the committed snapshot, so an accidental rename or reorder fails CI.

After an intentional change (a new optional input at the end, a new node), update the snapshot in the same
commit: ``CASCADEV_UPDATE_SCHEMA=1 python3 scripts/comfyui_env.py test tests/comfyui/test_node_schema.py``.
"""

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui

SNAPSHOT = Path(__file__).with_name("node_schema.json")


def schema_of(info: dict) -> dict:
    """Input names in order with their types (dropdowns as COMBO: their options may differ by ComfyUI version)."""
    inputs = {}
    for section in ("required", "optional"):
        names = info["input_order"].get(section, [])
        specs = info["input"].get(section, {})
        inputs[section] = [[n, "COMBO" if isinstance(specs[n][0], list) else specs[n][0]] for n in names]
    return {"inputs": inputs, "outputs": info["output"]}


def pack_schema(object_info: dict) -> dict:
    return {
        node_id: schema_of(info)
        for node_id, info in sorted(object_info.items())
        if info["python_module"].endswith("ComfyUI-CascadeV")
    }


def test_node_ids_input_names_and_order_match_the_snapshot(object_info):
    current = pack_schema(object_info)
    if os.environ.get("CASCADEV_UPDATE_SCHEMA"):
        SNAPSHOT.write_text(json.dumps(current, indent=1) + "\n")
    snapshot = json.loads(SNAPSHOT.read_text())
    assert sorted(current) == sorted(snapshot), "node ids changed (node ids are forever: retire, never rename)"
    for node_id, old in snapshot.items():
        new = current[node_id]
        for section in ("required", "optional"):
            assert new["inputs"][section] == old["inputs"][section], (
                f"{node_id}.{section} inputs changed from {old['inputs'][section]} to {new['inputs'][section]}; "
                "saved workflows would scramble. New inputs go at the end of 'optional'; if intended, update "
                f"{SNAPSHOT.name} (see this module's docstring)"
            )
        assert new["outputs"] == old["outputs"], f"{node_id} outputs changed"
