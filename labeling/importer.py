"""Import a batch into Label Studio at most once per message, whatever runs in parallel."""

from __future__ import annotations

from dataclasses import dataclass

from labeling.client import LabelStudioClient
from labeling.ledger import LabelingLedger
from labeling.tasks import label_studio_tasks


@dataclass(frozen=True)
class ImportResult:
    project_id: int
    imported: int
    skipped_in_project: int
    skipped_reserved: int
    task_ids: list[int]


def import_once(
    client: LabelStudioClient,
    ledger: LabelingLedger,
    rows: list[dict],
    *,
    purpose: str,
    run_id: str,
    project_id: int | None = None,
) -> ImportResult:
    """Reserve each row's `message_key` in the ledger, import only what this run won, record the task ids.

    Rows whose key is already a task in the project, or reserved by another run, are skipped and counted.
    """
    project_id = project_id or client.ensure_project()
    in_project = client.existing_message_keys(project_id)
    fresh = [r for r in rows if r["message_key"] not in in_project]
    won = set(ledger.reserve(client.project_title, [r["message_key"] for r in fresh], run_id))
    mine = [r for r in fresh if r["message_key"] in won]
    try:
        task_ids = client.import_tasks(project_id, label_studio_tasks(mine, purpose)) if mine else []
    except BaseException:
        ledger.release(client.project_title, won, run_id)  # nothing imported: let a later run try again
        raise
    ledger.mark_imported(client.project_title, dict(zip([r["message_key"] for r in mine], task_ids)))
    return ImportResult(project_id, len(task_ids), len(rows) - len(fresh), len(fresh) - len(mine), task_ids)
