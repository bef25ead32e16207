"""The MLflow model registry as the gate, the shadow report and the service see it.

Plain MLflow (no Dagster): the service follows the `champion` and `challenger` aliases through it, and the
Dagster `MlflowRegistry` resource wraps it for registration and promotion.

- Every version is an MLflow `pyfunc` model (`serving.pyfunc_model`) logged into the run that trained it; its
  artifacts are the compiled classifier and manifest, and the version carries their checksum.
- Reads fail loudly: an alias that does not exist is None, any other error (a locked database, a network
  failure) is raised, so nothing downstream mistakes "registry down" for "no champion".
- Alias moves are compare-and-set: the caller names the versions it evaluated against, they are re-read at
  the moment of the move (under a promotion lock for SQLite registries), and a difference raises `AliasMoved`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote

from manga_intent.artifact_digest import directory_sha256

GATE_TAG = "gate"
CHECKSUM_TAG = "artifact_sha256"
REASONS_TAG = "gate_reasons"
SERVING_GRAPH_TAG = "serving_graph"
"""The graph the gate judged and passed ("int8" or "fp32"); serving loads that one (`ChampionModel`)."""
PENDING, PASSED, REJECTED, ERROR = "pending", "passed", "rejected", "error"
MODEL_ARTIFACT_ROOT = "registered_model"
COMPILED_SUBDIR = Path("artifacts") / "compiled"
MAX_TAG_CHARS = 5000

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class RegistryError(RuntimeError):
    """The registry could not do what was asked; the caller must not guess."""


class AliasMoved(RegistryError):
    """An alias changed between evaluation and promotion (another run moved it)."""


class UntrustedVersion(RegistryError):
    """A version the service must not load: not passed by the gate, or its artifact does not match its checksum."""


def _is_missing(exc: BaseException) -> bool:
    """True for 'no such registered model' and 'no such alias' — the only errors that mean 'none'."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    message = str(exc)
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message
    )


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLAlchemy SQLite URI (sqlite:///relative or sqlite:////absolute)."""
    prefix = "sqlite:///"
    return Path(unquote(uri[len(prefix) :]).split("?")[0]) if uri.startswith(prefix) else None


@contextlib.contextmanager
def _postgres_advisory_lock(uri: str, name: str) -> Iterator[None]:
    """`pg_advisory_lock(hashtext(name))` (the key scheme of the PostgreSQL logs' table creation) for the
    duration of the block, on a connection of its own."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": name})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": name})
                conn.commit()
    finally:
        engine.dispose()


def project_requirements() -> list[str]:
    """What a machine needs to load a registered version: this project (which pins the runtime) and MLflow."""
    from importlib.metadata import PackageNotFoundError, version

    import mlflow

    requirements = [f"mlflow=={mlflow.__version__}"]
    with contextlib.suppress(PackageNotFoundError):
        requirements.append(f"manga-intent-platform=={version('manga-intent-platform')}")
    return requirements


class ModelRegistry:
    def __init__(
        self,
        tracking_uri: str,
        model_name: str = "manga-intent-classifier",
        champion_alias: str = "champion",
        challenger_alias: str = "challenger",
    ):
        self.tracking_uri, self.model_name = tracking_uri, model_name
        self.champion_alias, self.challenger_alias = champion_alias, challenger_alias
        self._client = None

    def client(self):
        from mlflow import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    # --- reads ------------------------------------------------------------------------------------------

    def alias_version(self, alias: str):
        """The model version holding `alias`, None if the alias (or the model) does not exist; errors raise."""
        try:
            return self.client().get_model_version_by_alias(self.model_name, alias)
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise

    def champion(self):
        return self.alias_version(self.champion_alias)

    def challenger(self):
        return self.alias_version(self.challenger_alias)

    def alias_versions(self) -> dict[str, str | None]:
        """{champion alias: version or None, challenger alias: version or None}, read now."""
        return {
            alias: (str(mv.version) if mv is not None else None)
            for alias, mv in (
                (self.champion_alias, self.champion()),
                (self.challenger_alias, self.challenger()),
            )
        }

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.model_name, str(version)).tags)

    def load_pyfunc(self, alias: str | None = None, dst: str | Path | None = None):
        """The version holding `alias` (default: the champion) as an MLflow pyfunc: gate-passed, its artifact
        checked against the checksum tag, running the graph the gate passed it with (`serving_graph`) — which
        a plain `mlflow.pyfunc.load_model("models:/name@alias")` cannot see. `dst` keeps the downloaded copy."""
        import mlflow.pyfunc

        from serving.pyfunc_model import GRAPH_CONFIG_KEY

        alias = alias or self.champion_alias
        mv = self.alias_version(alias)
        if mv is None:
            raise RegistryError(f"model {self.model_name!r} has no {alias!r} alias")
        self.trusted(mv)
        graph = (mv.tags or {}).get(SERVING_GRAPH_TAG)
        with contextlib.ExitStack() as stack:
            target = dst or stack.enter_context(tempfile.TemporaryDirectory(prefix="manga-pyfunc-"))
            local = self.download(str(mv.version), target)
            # the ONNX sessions are built in load_context, so the temporary copy may go once this returns
            model = mlflow.pyfunc.load_model(
                str(local), model_config={GRAPH_CONFIG_KEY: graph} if graph else None
            )
        runs = model.unwrap_python_model().graph
        # a version registered before the pyfunc took a graph: MLflow ignored the override
        if graph and runs not in (graph, "neuron"):
            raise RegistryError(
                f"version {mv.version} was passed to run its {graph} graph, but its pyfunc predates graph "
                f"selection and runs {runs}; serve it with `manga-intent serve`, which obeys the tag"
            )
        return model

    def passed_versions(self) -> list:
        """Versions the gate passed, newest first (the service falls back to these when the champion
        cannot be loaded)."""
        versions = self.client().search_model_versions(f"name='{self.model_name}'")
        passed = [v for v in versions if (v.tags or {}).get(GATE_TAG) == PASSED]
        return sorted(passed, key=lambda v: int(v.version), reverse=True)

    # --- registration -----------------------------------------------------------------------------------

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.get_registered_model(self.model_name)
        except Exception as exc:
            if not _is_missing(exc):
                raise
            try:
                client.create_registered_model(
                    self.model_name, description="MangaAssist intent classifier (compiled, calibrated)"
                )
            except MlflowException as race:
                if race.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise

    def register_candidate(self, run_id: str, compiled_dir: str | Path, tags: Mapping[str, str]) -> str:
        """Log `compiled_dir` as a pyfunc model into `run_id` and register it as a new version (gate pending)."""
        from serving.pyfunc_model import save_pyfunc

        checksum = directory_sha256(compiled_dir)
        artifact_path = f"{MODEL_ARTIFACT_ROOT}/{uuid.uuid4().hex[:12]}"
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = save_pyfunc(compiled_dir, Path(tmp) / "model", project_requirements())
            self.client().log_artifacts(run_id, str(model_dir), artifact_path)
        self._ensure_registered_model()
        version = self.client().create_model_version(
            self.model_name,
            source=f"runs:/{run_id}/{artifact_path}",
            run_id=run_id,
            tags={**{k: str(v) for k, v in tags.items()}, GATE_TAG: PENDING, CHECKSUM_TAG: checksum},
        )
        return str(version.version)

    def download(self, version: str, dst: str | Path) -> Path:
        """The version's MLflow model directory, after checking its compiled artifact against the checksum tag."""
        import mlflow

        tags = self.version_tags(version)
        expected = tags.get(CHECKSUM_TAG)
        if not expected:
            raise UntrustedVersion(f"version {version} has no registered {CHECKSUM_TAG}")
        # through this registry's own client: no global MLflow tracking state is consulted
        location = self.client().get_model_version_download_uri(self.model_name, str(version))
        Path(dst).mkdir(parents=True, exist_ok=True)
        if location.startswith("runs:/"):
            run_id, _, path = location[len("runs:/") :].partition("/")
            local = Path(self.client().download_artifacts(run_id, path, str(dst)))
        else:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dst)))
        compiled = local / COMPILED_SUBDIR
        actual = directory_sha256(compiled) if compiled.is_dir() else "missing"
        if actual != expected:
            raise UntrustedVersion(
                f"version {version}: artifact checksum {actual} does not match the registered {expected}"
            )
        return local

    def compiled_dir(self, model_dir: str | Path) -> Path:
        return Path(model_dir) / COMPILED_SUBDIR

    # --- writes -----------------------------------------------------------------------------------------

    def set_tags(self, version: str, tags: Mapping[str, object]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, str(version), key, str(value)[:MAX_TAG_CHARS])

    @contextlib.contextmanager
    def promotion_lock(self) -> Iterator[None]:
        """Serialise read-compare-move: a file lock next to a SQLite registry, a session advisory lock on a
        PostgreSQL one (held on its own connection, released when it ends or the process dies). Other
        registries (an MLflow server over HTTP) get none: the Dagster run queue's tag limit and pool
        serialise the runs that move aliases."""
        if self.tracking_uri.startswith(("postgresql", "postgres:")):
            with _postgres_advisory_lock(self.tracking_uri, f"manga-intent promotion {self.model_name}"):
                yield
            return
        path = _sqlite_path(self.tracking_uri)
        if path is None:
            yield
            return
        import fcntl

        lock_path = path.with_name(path.name + ".promotion.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _check_expected(self, expected: Mapping[str, str | None], during: str) -> None:
        now = self.alias_versions()
        for alias, before in expected.items():
            if now.get(alias) != (str(before) if before is not None else None):
                raise AliasMoved(
                    f"{alias} moved during {during}: "
                    f"{'v' + str(before) if before else 'none'} when it started, "
                    f"{'v' + now[alias] if now.get(alias) else 'none'} now"
                )

    def move_alias(
        self,
        alias: str,
        version: str,
        *,
        expected: Mapping[str, str | None],
        tags: Mapping[str, object],
        during: str = "evaluation",
        clear: tuple[str, ...] = (),
    ) -> None:
        """Compare-and-set: if every alias in `expected` still points where it did, tag `version`, point
        `alias` at it and delete the aliases in `clear`; otherwise raise AliasMoved and change nothing."""
        with self.promotion_lock():
            self._check_expected(expected, during)
            self.set_tags(version, tags)
            self.client().set_registered_model_alias(self.model_name, alias, str(version))
            for other in clear:
                self.client().delete_registered_model_alias(self.model_name, other)

    def clear_alias(self, alias: str, *, expected: Mapping[str, str | None], during: str) -> None:
        with self.promotion_lock():
            self._check_expected(expected, during)
            self.client().delete_registered_model_alias(self.model_name, alias)

    def trusted(self, mv) -> None:
        """Raise UntrustedVersion unless the gate passed this version (the checksum is checked on download)."""
        gate = mv.tags.get(GATE_TAG)
        if gate != PASSED:
            raise UntrustedVersion(f"version {mv.version} has gate={gate!r}, not {PASSED!r}")


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite database under $MANGA_HOME."""
    from manga_intent.home import manga_home

    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{manga_home() / 'mlflow.db'}"
