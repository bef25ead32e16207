"""Label Studio through its official SDK: one project, idempotent imports, completed annotations.

A plain client (no Dagster): the Dagster resource, the sensors and scripts all talk to Label Studio
through it. Every network failure becomes `LabelStudioUnavailable`, so callers can keep their state.
"""

from __future__ import annotations

import httpx

from labeling.label_config import label_config, read_choices


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be reached or refused the token; nothing was changed."""


class LabelStudioClient:
    def __init__(
        self,
        url: str,
        api_key: str,
        project_title: str = "MangaAssist intents",
        timeout_seconds: float = 15.0,
    ):
        self.url, self.api_key, self.project_title, self.timeout_seconds = (
            url,
            api_key,
            project_title,
            timeout_seconds,
        )
        self._sdk = None

    def sdk(self):
        """The label_studio_sdk client (created on first use)."""
        from label_studio_sdk import LabelStudio

        if self._sdk is None:
            self._sdk = LabelStudio(base_url=self.url, api_key=self.api_key, timeout=self.timeout_seconds)
        return self._sdk

    def ping(self) -> None:
        """Raise LabelStudioUnavailable unless the server answers its health check."""
        try:
            reply = httpx.get(f"{self.url.rstrip('/')}/health", timeout=self.timeout_seconds)
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"Label Studio at {self.url} is unreachable: {exc}") from None
        if reply.status_code != 200:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} answered {reply.status_code} on /health"
            )

    def _call(self, what: str, fn, *args, **kwargs):
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except (httpx.HTTPError, OSError) as exc:
            raise LabelStudioUnavailable(f"Label Studio at {self.url}: {what} failed: {exc}") from None
        except ApiError as exc:
            # refused credentials and server faults are "unavailable": callers keep their cursor and state
            if exc.status_code in (401, 403) or (exc.status_code or 0) >= 500:
                raise LabelStudioUnavailable(
                    f"Label Studio at {self.url}: {what} answered {exc.status_code}: {str(exc.body)[:200]}"
                ) from None
            raise

    def ensure_project(self) -> int:
        """The project's id, creating it with the intent labelling interface the first time.

        Safe under races: runs on one machine serialise on a lock file; across machines, when two creates
        raced, every caller settles on the lowest id and the empty duplicates are deleted.
        """
        import fcntl

        from manga_intent.home import manga_home

        sdk = self.sdk()
        lock_path = manga_home() / "label-studio-project.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ids = self._project_ids()
            if not ids:
                self._call(
                    "create project",
                    sdk.projects.create,
                    title=self.project_title,
                    label_config=label_config(),
                    description="Active-learning batches from MangaAssist's prediction log.",
                )
                ids = self._project_ids()
        if not ids:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url}: project {self.project_title!r} not found"
            )
        winner, *duplicates = ids
        for duplicate in duplicates:
            self._delete_if_empty(duplicate)
        return winner

    def _delete_if_empty(self, project_id: int) -> None:
        """Delete a raced duplicate project unless it holds tasks; another machine settling the same race
        may delete it first, so "not found" (404) means done, not an error."""
        from label_studio_sdk.core.api_error import ApiError

        sdk = self.sdk()
        try:
            if not self._call("list tasks", lambda: list(sdk.tasks.list(project=project_id, page_size=1))):
                self._call("delete duplicate project", sdk.projects.delete, id=project_id)
        except ApiError as exc:
            if exc.status_code != 404:
                raise

    def _project_ids(self) -> list[int]:
        projects = self._call("list projects", lambda: list(self.sdk().projects.list()))
        return sorted(p.id for p in projects if p.title == self.project_title)

    def project_url(self, project_id: int) -> str:
        return f"{self.url.rstrip('/')}/projects/{project_id}/data"

    def tasks(self, project_id: int) -> list:
        sdk = self.sdk()
        return self._call("list tasks", lambda: list(sdk.tasks.list(project=project_id, fields="all")))

    def existing_message_keys(self, project_id: int) -> set[str]:
        return {
            task.data.get("message_key") for task in self.tasks(project_id) if task.data.get("message_key")
        }

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        if not tasks:
            return []
        response = self._call(
            "import tasks",
            self.sdk().projects.import_tasks,
            id=project_id,
            request=tasks,
            return_task_ids=True,
        )
        return list(response.task_ids or [])

    def completed_annotations(self, project_id: int, after_id: int = 0) -> list[dict]:
        """Submitted (not cancelled) annotations with id > after_id, oldest first."""
        out = []
        for task in self.tasks(project_id):
            for annotation in task.annotations or []:
                annotation = annotation if isinstance(annotation, dict) else annotation.dict()
                if annotation.get("was_cancelled") or annotation["id"] <= after_id:
                    continue
                intent, secondary = read_choices(annotation.get("result"))
                if intent is None:
                    continue
                out.append(
                    {
                        "annotation_id": annotation["id"],
                        "task_id": task.id,
                        "text": task.data.get("text"),
                        "message_key": task.data.get("message_key"),
                        "intent": intent,
                        "secondary": secondary,
                        "annotator": annotation.get("completed_by"),
                        "purpose": task.data.get("purpose", "active_learning"),
                        "task_data": task.data,
                        "created_at": annotation.get("created_at"),
                    }
                )
        return sorted(out, key=lambda a: a["annotation_id"])
