"""Every listed sample accounted for: records + skipped + failed = listed, per split and class.

`listed` counts every entry that the dataset's files list for a split (a split file's line,
a `.mat` entry, or without a split file a media file found in a class folder), also those
the reader skipped (a missing, empty or unreadable file, a duplicate, an unknown class).
`skipped` are those the reader left out, `failed` those that did not decode, `records`
those written. Entries whose split cannot be read (a malformed line) are `unassigned`.

Two things make a prepare not ok (`verdict`): more than `max_failure_fraction` of a split's
listed samples not prepared (skipped or failed alike), and a lost class: a class with listed
samples in a split and no record there, or a class that no split lists at all (its label
would exist without one example). A class without records where it listed none (a class of
one video has no test clip in a seeded split) is only named, in `empty_classes`.
"""

from __future__ import annotations

from typing import Any

from keras_attnpool.data.datasets import DatasetSpec

_COUNTS = ("listed", "records", "skipped", "failed")


def _zero() -> dict[str, int]:
    return dict.fromkeys(_COUNTS, 0)


def _row(classes: list[str] | None) -> dict[str, Any]:
    """One split's counts, with a row per class for single-label data."""
    return {**_zero(), **({"classes": {c: _zero() for c in classes}} if classes else {})}


def _add(table: dict[str, Any], split: str, label: int | None, what: str,
         classes: list[str] | None) -> None:
    entry = table.setdefault(split, _row(classes))
    entry[what] += 1
    if classes and label is not None and 0 <= label < len(classes):
        entry["classes"][classes[label]][what] += 1


def account(spec: DatasetSpec, by_split: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """{split: {listed, records, skipped, failed[, classes: {name: {...}}]}} from the reader's
    spec and the finished-shard records of each split (per class for single-label data)."""
    classes = None if spec.multi_label else list(spec.classes)
    label_of = {(s.split, s.video_id): s.label for items in spec.samples.values()
                for s in items}
    table: dict[str, Any] = {split: _row(classes) for split in spec.samples}
    for split, items in spec.samples.items():
        for sample in items:
            _add(table, split, _single(sample.label), "listed", classes)
    for entry in spec.skipped:
        if entry.listed and entry.split is not None:
            _add(table, entry.split, entry.label, "listed", classes)
            _add(table, entry.split, entry.label, "skipped", classes)
    for split, records in by_split.items():
        for record in records:
            for video_id in record["video_ids"]:
                _add(table, split, _single(label_of[(split, video_id)]), "records", classes)
            for failed in record["skipped"]:
                _add(table, split, _single(label_of[(split, failed["video_id"])]), "failed",
                     classes)
    return table


def _single(label: Any) -> int | None:
    return int(label) if not hasattr(label, "shape") else None


def lost_classes(spec: DatasetSpec, accounting: dict[str, Any]) -> list[dict[str, Any]]:
    """[{class, split, listed}]: classes with listed samples in a split and no record there;
    split None for a class that no split lists (single-label datasets)."""
    if spec.multi_label:
        return []
    lost = []
    for name in spec.classes:
        rows = {split: table.get("classes", {}).get(name, _zero())
                for split, table in accounting.items()}
        if not any(row["listed"] for row in rows.values()):
            lost.append({"class": name, "split": None, "listed": 0})
        lost.extend({"class": name, "split": split, "listed": row["listed"]}
                    for split, row in rows.items() if row["listed"] and not row["records"])
    return lost


def empty_classes(spec: DatasetSpec, accounting: dict[str, Any]) -> dict[str, list[str]]:
    """{split: [classes without a record]} for the splits whose entries carry classes."""
    if spec.multi_label:
        return {}
    out = {}
    for split, table in accounting.items():
        rows = table.get("classes", {})
        if any(c["listed"] for c in rows.values()):
            out[split] = [name for name, c in rows.items() if not c["records"]]
    return out


def failure_summary(accounting: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{split: {failed, listed}}: every listed sample not written counts as failed."""
    return {split: {"failed": t["listed"] - t["records"], "listed": t["listed"]}
            for split, t in accounting.items()}


def verdict(failures: dict[str, dict[str, Any]], lost: list[dict[str, Any]],
            max_failure_fraction: float) -> dict[str, Any]:
    """The manifest's `failures` (with each split's `fraction`) and `ok`."""
    out = {}
    for split, entry in failures.items():
        failed, listed = int(entry["failed"]), int(entry["listed"])
        out[split] = {"failed": failed, "listed": listed,
                      "fraction": failed / listed if listed else 0.0}
    ok = all(e["fraction"] <= max_failure_fraction for e in out.values()) and not lost
    return {"failures": out, "ok": ok}


def not_ok_message(manifest: dict[str, Any], what_to_do: str) -> str:
    """One line for a manifest that is not ok: which splits left too many listed samples
    unprepared (against the run's `max_failure_fraction`) and which classes were lost."""
    limit = manifest["run"]["max_failure_fraction"]
    parts = []
    bad = {s: f"{f['failed']} of {f['listed']}" for s, f in manifest["failures"].items()
           if f["fraction"] > limit}
    if bad:
        parts.append(f"too many listed samples not prepared ({bad}; limit "
                     f"--max_failure_fraction={limit:g})")
    lost: dict[str, list[str]] = {}
    for c in manifest["lost_classes"]:
        lost.setdefault(c["class"], []).append(
            f"{c['split']}: 0 of {c['listed']}" if c["split"] else "no sample listed")
    if lost:
        parts.append("classes without records: " + ", ".join(
            f"'{name}' ({', '.join(where)})" for name, where in lost.items()))
    return ("; ".join(parts) + "; everything else was written, see skipped in manifest.json; "
            + what_to_do)
