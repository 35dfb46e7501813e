"""A reference's row ids are computed only for the rows looked up, and equal `rows.row_ids` of the
whole reference (real WizardLM test prompts, as a jsonl file without ids and with some ids given)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from curate.io import read_rows
from curate.rows import row_ids
from curate.stages.references import RowIds


def _reference(shared_data: Path, tmp_path: Path, with_ids: bool) -> Path:
    rows = []
    for n, line in enumerate((shared_data / "instructions/wizardlm/WizardLM_testset_odd.jsonl").open()):
        row = {"instruction": json.loads(line)["Instruction"]}
        if with_ids and n % 2:
            row["id"] = f"given-{n}"
        rows.append(row)
    path = tmp_path / "reference.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_lazy_reference_ids_equal_row_ids(shared_data: Path, tmp_path: Path) -> None:
    for with_ids in (False, True):
        ds = read_rows(_reference(shared_data, tmp_path, with_ids))
        keep = list(range(3, len(ds), 2))  # e.g. the rows with a prompt text
        whole = row_ids(ds)
        ids = RowIds(ds, keep)
        assert len(ids) == len(keep)
        looked_up = [ids[np.int64(i)] for i in reversed(range(len(keep)))][::-1]  # any order, numpy ints
        assert looked_up == [whole[k] for k in keep]
        assert any(i.startswith("given-") for i in looked_up) == with_ids
        assert len(set(looked_up)) == len(keep)
