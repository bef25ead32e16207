"""Deployment configuration, loaded by the installed Dagster packages: Kubernetes (Helm values for the
official chart, `k8s_job_executor` for training steps) and ECS (`EcsRunLauncher`)."""

from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_ecs_instance_config_loads_the_ecs_run_launcher(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes.config_class import ConfigurableClassData

    (tmp_path / "dagster.yaml").write_text((REPO / "deploy/ecs/dagster.yaml").read_text())
    monkeypatch.setenv("MANGA_DAGSTER_PG_URL", "postgresql://u@127.0.0.1:1/dagster")
    config, _ = dagster_instance_config(str(tmp_path))
    launcher = config["run_launcher"]
    data = ConfigurableClassData(launcher["module"], launcher["class"], yaml.safe_dump(launcher["config"]))
    from dagster_aws.ecs import EcsRunLauncher

    assert data.module_name == "dagster_aws.ecs" and data.class_name == "EcsRunLauncher"
    # the launcher's own schema accepts the file's config (validated the way the instance does it)
    from dagster._config import process_config
    from dagster._config.field import resolve_to_config_type

    result = process_config(resolve_to_config_type(EcsRunLauncher.config_type()), launcher["config"])
    assert result.success, result.errors
    assert result.value["run_resources"] == {"cpu": "1024", "memory": "4096"}
    queue = config["concurrency"]["runs"]
    assert queue["tag_concurrency_limits"] == QUEUE_LIMITS


#: the run-queue limits every deployment shares, keyed on the tags the jobs really carry
QUEUE_LIMITS = [{"key": "manga/serial", "limit": 1}, {"key": "manga/labeling", "limit": 2}]


def test_every_instance_config_limits_the_tags_the_jobs_carry(tmp_path, monkeypatch):
    """The repository's dagster.yaml, deploy/postgres and ECS configure the same queue, and its keys are tags
    that retrain and labelling runs actually have (a limit on a tag no run carries limits nothing)."""
    from dagster._core.instance.ref import InstanceRef

    from manga_assets.definitions import defs
    from manga_assets.jobs import LABELING_TAG, SERIAL_TAG

    root = yaml.safe_load((REPO / "dagster.yaml").read_text())["concurrency"]
    postgres = yaml.safe_load((REPO / "deploy/postgres/dagster.yaml").read_text())["concurrency"]
    assert postgres == root and root["runs"]["tag_concurrency_limits"] == QUEUE_LIMITS
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {d["key"] for d in limits} == {SERIAL_TAG, LABELING_TAG}
    for job, tag in [
        ("retrain_job", SERIAL_TAG),
        ("seed_sweep_job", SERIAL_TAG),
        ("rebuild_artifact_job", SERIAL_TAG),
        ("labeling_job", LABELING_TAG),
        ("segment_relabel_job", LABELING_TAG),
        ("audit_job", LABELING_TAG),
    ]:
        assert tag in defs.resolve_job_def(job).run_tags, job
    helm = yaml.safe_load((REPO / "deploy/k8s/values.yaml").read_text())
    queued = helm["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == QUEUE_LIMITS
    instance.dispose()


def test_helm_values_follow_the_official_chart_schema():
    values = yaml.safe_load((REPO / "deploy/k8s/values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "manga_assets.definitions"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    run_config = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    parsed = UserDefinedDagsterK8sConfig.from_dict({"container_config": run_config["containerConfig"]})
    assert parsed.container_config["resources"]["requests"]["cpu"] == "1"
    assert "run_k8s_config" in K8sRunLauncher.config_type()


def test_k8s_job_executor_runs_training_steps_with_their_own_requests(monkeypatch):
    import importlib

    monkeypatch.setenv("MANGA_EXECUTOR", "k8s")
    import manga_assets.jobs as jobs

    importlib.reload(jobs)
    try:
        executor = jobs.retrain_job.executor_def
        assert executor.name == "training_k8s_executor"
        from dagster._config import process_config
        from dagster_k8s import k8s_job_executor

        checked = process_config(k8s_job_executor.config_schema.config_type, jobs.K8S_EXECUTOR_CONFIG)
        assert checked.success, checked.errors
        per_step = checked.value["per_step_k8s_config"]["trained_model"]
        assert per_step["container_config"]["resources"]["requests"]["cpu"] == "4"
        defs = dg.Definitions(
            assets=[dg.AssetSpec("x")], jobs=[dg.define_asset_job("j", executor_def=executor)]
        )
        assert defs.resolve_job_def("j").executor_def.name == "training_k8s_executor"
    finally:
        monkeypatch.delenv("MANGA_EXECUTOR")
        importlib.reload(jobs)
