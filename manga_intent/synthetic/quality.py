"""Measure and filter generated data: k-fold consensus against the real training split, plus label issues.

  python -m manga_intent.synthetic.quality --n 2000 --k 5 --out runs/synthetic_quality

writes kept.jsonl (the filtered synthetic set), review.jsonl (flagged rows with each model's
vote, for Label Studio), label_issues.jsonl (training rows whose label looks wrong), report.json,
report.md (per-intent agreement and kept/flagged table) and audit_sample.md (for humans).
"""

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from manga_intent.consensus import ConsensusResult, consensus_filter
from manga_intent.data import SPLIT_SEED, Example, load_jsonl, make_splits, normalized_key
from manga_intent.heldout import golden_text_keys
from manga_intent.shipped_data import GOLDEN, SHIPPED, read_rows
from manga_intent.synthetic import generate_synthetic, write_audit_sample
from manga_intent.taxonomy import INTENTS
from manga_intent.training import TrainConfig


def hand_written_keys() -> set[str]:
    """Normalised texts of every shipped hand-written row (golden, seed corpus, OOD).

    The golden set contributes its message keys only (`heldout.golden_text_keys`): decontamination, no labels.
    """
    keys = {
        normalized_key(row["text"])
        for shipped in SHIPPED
        if shipped is not GOLDEN
        for row in read_rows(shipped.path)
    }
    return keys | golden_text_keys()


def drop_collisions(rows: Sequence[dict], reserved: Iterable[str]) -> tuple[list[dict], list[dict]]:
    """Split generated rows into (usable, colliding with hand-written data after normalisation)."""
    reserved = set(reserved)
    usable, colliding = [], []
    for row in rows:
        (colliding if normalized_key(row["text"]) in reserved else usable).append(row)
    return usable, colliding


def report_markdown(result: ConsensusResult, dropped: int) -> str:
    lines = [
        "| intent | generated | kept | flagged | kept % | model agreement |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, row in result.per_intent.items():
        kept_share = row["kept"] / row["generated"] if row["generated"] else 0.0
        agreement = f"{row['model_agreement']:.1%}" if row["model_agreement"] is not None else "–"
        lines.append(
            f"| {label} | {row['generated']} | {row['kept']} | {row['flagged']} | {kept_share:.1%} "
            f"| {agreement} |"
        )
    total = sum(r["generated"] for r in result.per_intent.values())
    kept = len(result.kept)
    lines.append(
        f"| **all** | {total} | {kept} | {len(result.flagged)} | {kept / max(total, 1):.1%} | "
        f"{_overall_agreement(result):.1%} |"
    )
    lines += [
        "",
        f"Rows dropped before filtering because they equal a hand-written row: {dropped}.",
        f"Fold-model accuracy on their held-out training fold: "
        f"{', '.join(f'{a:.3f}' for a in result.fold_accuracies)}.",
        f"Confident-learning label issues in the training split: {len(result.label_issues)}.",
    ]
    return "\n".join(lines) + "\n"


def _overall_agreement(result: ConsensusResult) -> float:
    rows = [r for r in result.per_intent.values() if r["model_agreement"] is not None]
    total = sum(r["generated"] for r in rows)
    return sum(r["model_agreement"] * r["generated"] for r in rows) / max(total, 1)


def _write_jsonl(rows: Iterable[dict], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_quality_outputs(
    result: ConsensusResult, out_dir: Path, *, dropped: int, synthetic: Sequence[dict]
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(result.kept, out_dir / "kept.jsonl")
    _write_jsonl(result.flagged, out_dir / "review.jsonl")
    _write_jsonl(result.label_issues, out_dir / "label_issues.jsonl")
    write_audit_sample(list(synthetic), out_dir / "audit_sample.md", k=50, seed=0)
    markdown = report_markdown(result, dropped)
    (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    summary = {
        "generated": len(synthetic),
        "kept": len(result.kept),
        "flagged": len(result.flagged),
        "dropped_hand_written_collisions": dropped,
        "model_agreement": _overall_agreement(result),
        "per_intent": result.per_intent,
        "fold_accuracies": result.fold_accuracies,
        "label_issues": len(result.label_issues),
        "consensus_learner": result.learner,
        "kept_version": rows_version(result.kept),
        "probe_agreement": result.probe_agreement,
    }
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def run_quality(
    real: Sequence[Example],
    n: int,
    *,
    seed: int,
    k: int,
    config: TrainConfig,
    base_model: str | None = None,
    model_factory=None,
    progress: bool = True,
    on_fold_end=None,
    learner: str = "finetune",
    compare_probe: bool = True,
) -> tuple[ConsensusResult, list[dict], int]:
    """Generate n rows, drop any equal to a hand-written row, consensus-filter the rest against `real`.

    `real` is the training split: the fold models never see validation, test or golden rows. With the
    fine-tuned learner and `compare_probe`, the linear probe (seconds) filters the same rows too and
    `result.probe_agreement` records how often it makes the same keep/flag call.
    """
    generated = generate_synthetic(n, seed=seed)
    synthetic, colliding = drop_collisions(generated, hand_written_keys())
    common = dict(k=k, seed=seed, base_model=base_model, model_factory=model_factory)
    result = consensus_filter(
        real,
        synthetic,
        INTENTS,
        config,
        progress=progress,
        on_fold_end=on_fold_end,
        learner=learner,
        **common,
    )
    if learner == "finetune" and compare_probe and synthetic:
        probe = consensus_filter(
            real, synthetic, INTENTS, config, progress=False, learner="linear_probe", **common
        )
        result.probe_agreement = probe_agreement(result, probe)
    return result, synthetic, len(colliding)


#: bump when the generator, the collision rule or the consensus filter changes what the same inputs produce
CONSENSUS_VERSION = "consensus-3"


def consensus_cache_key(
    corpus_version: str, *, n: int, k: int, seed: int, fold_epochs: int, learner: str, base_model: str
) -> str:
    """Content address of a consensus run: the same key means the same kept/flagged rows, so a retrain
    whose seed corpus and settings are unchanged reuses them instead of training k fold models again."""
    payload = json.dumps(
        {
            "corpus": corpus_version,
            "n": n,
            "k": k,
            "seed": seed,
            "fold_epochs": fold_epochs,
            "learner": learner,
            "base_model": base_model,
            "code": CONSENSUS_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def rows_version(rows: Iterable[dict]) -> str:
    """Order-independent content hash of (text, label) rows: the synthetic set's data version."""
    digest = hashlib.sha256()
    for line in sorted(json.dumps([r["text"], r["label"]], ensure_ascii=False) for r in rows):
        digest.update(line.encode("utf-8") + b"\n")
    return "sha256:" + digest.hexdigest()


def probe_agreement(finetuned: ConsensusResult, probe: ConsensusResult) -> dict:
    """How the linear probe's keep/flag calls compare with the fine-tuned folds' on the same rows."""
    a, b = np.asarray(finetuned.kept_mask, bool), np.asarray(probe.kept_mask, bool)
    agree = float((a == b).mean())
    p_a, p_b = a.mean(), b.mean()
    chance = p_a * p_b + (1 - p_a) * (1 - p_b)
    return {
        "rows": int(len(a)),
        "decision_agreement": agree,
        "cohen_kappa": float((agree - chance) / (1 - chance)) if chance < 1 else 1.0,
        "kept_by_finetuned": int(a.sum()),
        "kept_by_probe": int(b.sum()),
        "kept_by_both": int((a & b).sum()),
        "probe_fold_accuracy": float(np.mean(probe.fold_accuracies)),
        "finetuned_fold_accuracy": float(np.mean(finetuned.fold_accuracies)),
    }


def main(argv: list[str] | None = None) -> int:
    from manga_intent.shipped_data import SEED_CORPUS

    parser = argparse.ArgumentParser(description="k-fold consensus filtering of generated messages")
    parser.add_argument(
        "--real", default=str(SEED_CORPUS.path), help="labelled real pool (JSONL); its training split is used"
    )
    parser.add_argument("--n", type=int, default=2000, help="synthetic rows to generate")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--out", default="runs/synthetic_quality")
    parser.add_argument(
        "--learner",
        choices=["finetune", "linear_probe"],
        default="finetune",
        help="fold learner: fine-tuned copies (the seed's) or a linear probe on frozen embeddings (seconds)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    # consensus folds train on the training split only: validation and test stay held out
    real = make_splits(load_jsonl(args.real, allowed_labels=INTENTS).examples, seed=SPLIT_SEED).train
    result, synthetic, dropped = run_quality(
        real,
        args.n,
        seed=args.seed,
        k=args.k,
        config=TrainConfig(epochs=args.epochs, max_steps=None),
        base_model=args.base_model,
        progress=not args.quiet,
        learner=args.learner,
    )
    write_quality_outputs(result, Path(args.out), dropped=dropped, synthetic=synthetic)
    print(report_markdown(result, dropped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
