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
    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"


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
