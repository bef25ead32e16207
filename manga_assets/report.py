"""`seed_sweep_report`: how much of a result is the recipe and how much is the seed.

Aggregates every materialized seed partition of `trained_model` + `calibrator`: seed-mean of
accuracy, rare-class accuracy, macro-F1 and calibrated ECE with a paired bootstrap CI (the same
resampled test/golden messages for every seed, averaged over seeds), and segment-wise accuracy by
language segment, rarity tier and channel as tabulated in the seed.
"""

import tempfile
from collections import defaultdict
from pathlib import Path

import dagster as dg
import numpy as np

from manga_assets.common import markdown_table, md, read_snapshot, real_splits
from manga_assets.shipped_data import GOLDEN, read_rows
from manga_intent.inference import predict_logits, softmax
from manga_intent.labels import SEED_TRAFFIC_SHARES
from manga_intent.metrics import expected_calibration_error, macro_f1
from manga_intent.model_io import load_trained
from resources.storage import ArtifactStore


class SeedSweepConfig(dg.Config):
    bootstrap: int = 1000


def latest_manifest(instance: dg.DagsterInstance, key: str, partition: str) -> dict | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    metadata = records[0].asset_materialization.metadata
    return metadata["manifest"].value if "manifest" in metadata else None


def rarity_tier(label: str) -> str:
    share = SEED_TRAFFIC_SHARES.get(label, 0.0)
    return "frequent (>15%)" if share > 0.15 else ("rare (<5%)" if share < 0.05 else "mid (5-15%)")


def language_segment(row: dict) -> str:
    segments = row.get("segment") or []
    if row.get("language") in ("jp_en", "romaji", "other"):
        return {"jp_en": "JP-EN code-switch", "romaji": "romanized JP", "other": "other"}[row["language"]]
    if "jp_en" in segments:
        return "JP-EN code-switch"
    if "romaji" in segments:
        return "romanized JP"
    return "English-only"


def seed_mean_with_ci(per_seed_correct: list[np.ndarray], per_seed_probs: list[np.ndarray], y: np.ndarray,
                      rare_mask: np.ndarray, n_boot: int, seed: int = 0) -> dict:
    """Mean over seeds and a paired bootstrap CI (resample messages once, score every seed on them)."""
    k = per_seed_probs[0].shape[1]

    def stats(idx):
        acc = np.mean([c[idx].mean() for c in per_seed_correct])
        rare_idx = idx[rare_mask[idx]]
        rare = np.mean([c[rare_idx].mean() for c in per_seed_correct]) if len(rare_idx) else np.nan
        f1 = np.mean([macro_f1(y[idx], p[idx].argmax(1), k) for p in per_seed_probs])
        ece = np.mean([expected_calibration_error(p[idx], y[idx]) for p in per_seed_probs])
        return np.array([acc, rare, f1, ece])

    point = stats(np.arange(len(y)))
    rng = np.random.default_rng(seed)
    samples = np.array([stats(rng.integers(0, len(y), len(y))) for _ in range(n_boot)])
    lo, hi = np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)
    names = ["accuracy", "rare_class_accuracy", "macro_f1", "ece_calibrated"]
    return {name: {"mean": float(point[i]), "ci95": [float(lo[i]), float(hi[i])]} for i, name in enumerate(names)}


def segment_table(rows: list[dict], per_seed_correct: list[np.ndarray], key) -> list[dict]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[key(row)].append(i)
    out = []
    for name, idx in sorted(groups.items(), key=lambda item: -len(item[1])):
        idx = np.array(idx)
        accs = [c[idx].mean() for c in per_seed_correct]
        out.append({"segment": name, "share": len(idx) / len(rows), "n": len(idx), "accuracy": float(np.mean(accs)),
                    "seed_min": float(np.min(accs)), "seed_max": float(np.max(accs))})
    return out


@dg.asset(group_name="reporting", deps=["trained_model", "calibrator"], kinds={"python"})
def seed_sweep_report(
    context: dg.AssetExecutionContext, config: SeedSweepConfig, intent_dataset: dict, artifact_store: ArtifactStore,
) -> dg.MaterializeResult:
    """Seed-sweep summary over every seed partition materialized so far (backfill them all for the full sweep)."""
    from manga_assets.partitions import seed_partitions

    seeds = []
    for partition in seed_partitions.get_partition_keys():
        model = latest_manifest(context.instance, "trained_model", partition)
        calibration = latest_manifest(context.instance, "calibrator", partition)
        if model and calibration:
            seeds.append((partition, model, calibration))
    if not seeds:
        raise dg.Failure("no seed partition of trained_model + calibrator is materialized yet")
    test = real_splits(read_snapshot(artifact_store, intent_dataset["uri"])).test
    test_rows = [{"text": e.text, "label": e.label, **e.meta} for e in test]
    golden = read_rows(GOLDEN.path)
    sets = {"test split": test_rows, "golden set": golden}
    probs: dict[str, list[np.ndarray]] = {name: [] for name in sets}
    labels = None
    for _partition, model_manifest, calibration in seeds:  # load each seed's model once, score both sets
        with tempfile.TemporaryDirectory() as tmp:
            model, tokenizer, card = load_trained(artifact_store.get_dir(model_manifest["model_uri"], Path(tmp)))
            labels = card["labels"]
            for name, rows in sets.items():
                logits = predict_logits(model, tokenizer, [r["text"] for r in rows])
                probs[name].append(softmax(logits, calibration["temperature"]))
    results = {}
    for name, rows in sets.items():
        y = np.array([labels.index(r["label"]) for r in rows])
        correct = [p.argmax(1) == y for p in probs[name]]
        rare_mask = np.array([rarity_tier(r["label"]).startswith("rare") for r in rows])
        results[name] = {
            "summary": seed_mean_with_ci(correct, probs[name], y, rare_mask, config.bootstrap),
            "language": segment_table(rows, correct, language_segment),
            "rarity": segment_table(rows, correct, lambda r: rarity_tier(r["label"])),
            "channel": segment_table(rows, correct, lambda r: r.get("channel", "n/a")) if name == "test split" else [],
        }
    metadata = {"seeds": dg.MetadataValue.json([s[0] for s in seeds]), "n_seeds": len(seeds)}
    for name, result in results.items():
        prefix = name.split()[0]
        summary_rows = [{"metric": metric, "seed mean": v["mean"], "CI95 low": v["ci95"][0], "CI95 high": v["ci95"][1]}
                        for metric, v in result["summary"].items()]
        metadata[f"{prefix}_summary"] = md(markdown_table(summary_rows))
        metadata[f"{prefix}_by_language"] = md(markdown_table(result["language"], floats=3))
        metadata[f"{prefix}_by_rarity"] = md(markdown_table(result["rarity"], floats=3))
        if result["channel"]:
            metadata[f"{prefix}_by_channel"] = md(markdown_table(result["channel"], floats=3))
        metadata[f"{prefix}_accuracy_mean"] = result["summary"]["accuracy"]["mean"]
    context.log.info(f"seed sweep over {[s[0] for s in seeds]}: golden accuracy mean "
                     f"{results['golden set']['summary']['accuracy']['mean']:.4f}")
    return dg.MaterializeResult(metadata=metadata)
