"""Recipe choices by k-fold cross-validation on the training + validation pool (never test, never golden).

With 160 validation rows one row is 0.6 pp and a rare intent has ~5 rows, so a single validation split
cannot tell most recipe variants apart. Here every variant trains k times on the same stratified folds
of the pool (the label set's train + val rows; its test rows are never loaded), with the same seeds per
fold, and predicts its held-out fold: every pool row gets one out-of-fold (OOF) prediction per variant,
and variants are compared row by row (paired). Each held-out fold is also attacked (the robustness suite's
`val` phrasings: never trained on, never the held-out report set), so defences are compared on OOF flip
and goal rates too. Recipe v2 trains as shipped: with outlier exposure on the fitting half of data/ood
plus generated off-topic text. Inside each fold, the recipe's early stopping uses a
validation set carved from the training folds (10%, stratified, seeded), exactly as `manga-intent train`
carves one from a train-only file; the held-out fold is scored only.

  python bench/cv_select.py run --plan main [--budget-minutes 12]    # one chunk, under the CPU lock
  python bench/cv_select.py table [--label-set seed]                # the ablation table (markdown)
  python bench/cv_select.py temperature --label-set seed --variant v2 # T fitted on the OOF logits
  python bench/cv_select.py calibrators --variant shipped           # calibrator fitted on inner val vs OOF

`run` trains pending (label set, variant, fold) jobs of the plan in order until the time budget is
spent, appending one JSON line per job to bench/results/cv/runs.jsonl (resumable; bench/run_cv.sh loops
it under `flock /tmp/manga-cpu.lock`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.cv_plan import PLANS, VARIANTS, Variant  # noqa: E402
from bench.label_sets import label_set  # noqa: E402
from manga_intent.crossfit import fold_training_seed, make_folds, stratified_folds  # noqa: E402
from manga_intent.data import Example, load_jsonl  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "cv" / "runs.jsonl"
RARE_SHARE = 0.05


def pool_and_folds(name: str, k: int) -> tuple[list[Example], np.ndarray, list[str]]:
    """The pool (train + val of the label set's split; its test rows never enter) and its fold ids."""
    splits, labels = label_set(name)
    pool = [*splits.train, *splits.val]
    return pool, stratified_folds([e.label for e in pool], k), labels


def _train_variant(variant: Variant, train, val, labels, seed: int):
    """(model, tokenizer, training summary) of one variant on one fold."""
    from manga_intent.training import LEGACY_RECIPE, TrainConfig, train_classifier

    if variant.kind == "plain":
        from bench.train_throughput import plain_hf_loop

        model, tokenizer, eps = plain_hf_loop(
            train,
            labels,
            base_model=None,
            lr=variant.overrides["lr"],
            epochs=variant.overrides.get("epochs", 5),
            batch_size=32,
            seed=seed,
        )
        return model, tokenizer, {"examples_per_second": eps}
    base = LEGACY_RECIPE if variant.kind == "legacy" else TrainConfig()
    config = replace(base, init_seed=seed, sampler_seed=seed, **variant.overrides)
    outliers = ()
    if config.outlier_exposure_weight > 0:  # as `manga-intent train` ships: the OOD fitting half + generated
        from manga_intent.calibrator_fit import shipped_ood_pools

        outliers = shipped_ood_pools().train_texts
    result = train_classifier(train, val, labels, config, progress=False, outlier_texts=outliers)
    summary = {
        "best_step": result.best.step,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "train_seconds": result.train_seconds,
        "examples_per_second": result.examples_per_second,
        "inner_val_accuracy": result.best.val_accuracy,
        "inner_val_macro_f1": result.best.val_macro_f1,
        "config": asdict(result.config),
    }
    return result.model, result.tokenizer, summary


def run_fold(label_set_name: str, variant_name: str, fold: int, k: int) -> dict:
    from manga_intent.inference import predict_logits

    pool, _, labels = pool_and_folds(label_set_name, k)
    chosen = make_folds(pool, k)[fold]
    held, train, val = chosen.held_out, chosen.train, chosen.val
    seed = fold_training_seed(fold)
    variant = VARIANTS[variant_name]
    extra = (variant.extra_train,) if isinstance(variant.extra_train, str) else variant.extra_train
    for path in filter(None, extra):
        train = [*train, *load_jsonl(Path(__file__).resolve().parents[1] / path).examples]
    started = time.perf_counter()
    model, tokenizer, summary = _train_variant(variant, train, val, labels, seed)
    logits = predict_logits(model, tokenizer, [pool[i].text for i in held])
    val_logits = predict_logits(model, tokenizer, [e.text for e in val])
    index = {label: j for j, label in enumerate(labels)}
    attacked = attacked_predictions(model, tokenizer, [pool[i] for i in held], labels, seed=fold)
    return {
        "label_set": label_set_name,
        "variant": variant_name,
        "fold": fold,
        "k": k,
        "seed": seed,
        "train_rows": len(train),
        "inner_val_rows": len(val),
        "rows": held,
        "labels": [index[pool[i].label] for i in held],
        "logits": np.round(logits, 4).tolist(),
        "inner_val_labels": [index[e.label] for e in val],
        "inner_val_logits": np.round(val_logits, 4).tolist(),
        "wall_seconds": time.perf_counter() - started,
        "attacked": attacked,
        **summary,
    }


def attacked_predictions(model, tokenizer, rows: list[Example], labels: list[str], seed: int) -> dict:
    """Per attack (val phrasings): the predicted label of every attacked held-out row and the injected one
    (-1 for character attacks)."""
    import random

    from manga_intent.inference import predict_logits
    from manga_intent.robustness import ATTACKS, attack_text

    index = {label: j for j, label in enumerate(labels)}
    out = {}
    for attack in ATTACKS:
        rng = random.Random(f"cv:{seed}:{attack.name}")
        texts, targets = [], []
        for row in rows:
            text, target = attack_text(attack, row.text, row.label, labels, rng, "val")
            texts.append(text)  # predict_logits cleans, as serving does
            targets.append(index[target] if target else -1)
        predicted = predict_logits(model, tokenizer, texts).argmax(1)
        out[attack.name] = {"predicted": predicted.tolist(), "injected": targets}
    return out


def read_runs(path: Path = RESULTS) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pending_jobs(plan: str, done: set) -> list[tuple[str, str, int, int]]:
    jobs = []
    for label_set_name, variant_names, k in PLANS[plan]:
        for variant_name in variant_names:
            for fold in range(k):
                if (label_set_name, variant_name, fold, k) not in done:
                    jobs.append((label_set_name, variant_name, fold, k))
    return jobs


def cmd_run(args) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from manga_intent.model_io import silence_progress_bars

    silence_progress_bars()
    out = Path(args.out)
    done = {(r["label_set"], r["variant"], r["fold"], r["k"]) for r in read_runs(out)}
    jobs = pending_jobs(args.plan, done)
    if not jobs:
        print("cv: plan complete", flush=True)
        return
    started = time.perf_counter()
    longest = 0.0
    for label_set_name, variant_name, fold, k in jobs:
        elapsed = time.perf_counter() - started
        if elapsed > 0 and elapsed + longest > args.budget_minutes * 60:
            break
        t0 = time.perf_counter()
        record = run_fold(label_set_name, variant_name, fold, k)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        took = time.perf_counter() - t0
        longest = max(longest, took)
        acc = float((np.argmax(record["logits"], axis=1) == np.array(record["labels"])).mean())
        print(
            f"cv {label_set_name} {variant_name} fold {fold}/{k}: held-out acc {acc:.4f} "
            f"({len(record['rows'])} rows, best step {record.get('best_step')}/{record.get('steps')}, "
            f"{took:.0f}s)",
            flush=True,
        )
    remaining = len(
        pending_jobs(args.plan, {(r["label_set"], r["variant"], r["fold"], r["k"]) for r in read_runs(out)})
    )
    print(f"cv: {remaining} jobs left in plan {args.plan}", flush=True)


# --- aggregation ---------------------------------------------------------------------------------


def oof(runs: list[dict], label_set_name: str, variant: str, k: int | None = None):
    """(row ids, labels, logits) of a variant's out-of-fold predictions, or None while folds are missing."""
    chosen = [r for r in runs if r["label_set"] == label_set_name and r["variant"] == variant]
    if k is not None:
        chosen = [r for r in chosen if r["k"] == k]
    if not chosen:
        return None
    k = chosen[0]["k"]
    by_fold = {r["fold"]: r for r in chosen if r["k"] == k}
    if len(by_fold) < k:
        return None
    rows = np.concatenate([by_fold[f]["rows"] for f in range(k)])
    labels = np.concatenate([by_fold[f]["labels"] for f in range(k)])
    logits = np.concatenate([np.asarray(by_fold[f]["logits"], dtype=float) for f in range(k)])
    order = np.argsort(rows)
    return rows[order], labels[order], logits[order], by_fold


def rare_ids(labels: np.ndarray, num_classes: int) -> list[int]:
    shares = np.bincount(labels, minlength=num_classes) / len(labels)
    return [c for c in range(num_classes) if shares[c] < RARE_SHARE]


def variant_scores(labels: np.ndarray, logits: np.ndarray, by_fold: dict) -> dict:
    from manga_intent.calibration import fit_temperature
    from manga_intent.inference import softmax
    from manga_intent.metrics import expected_calibration_error, macro_f1, negative_log_likelihood

    k = logits.shape[1]
    predicted = logits.argmax(1)
    correct = predicted == labels
    rare = rare_ids(labels, k)
    fit = fit_temperature(logits, labels)
    probs = softmax(logits, fit.temperature)
    per_rare = {c: float(correct[labels == c].mean()) for c in rare}
    return {
        "n": int(len(labels)),
        "accuracy": float(correct.mean()),
        "macro_f1": macro_f1(labels, predicted, k),
        "rare_accuracy": float(correct[np.isin(labels, rare)].mean()) if rare else None,
        "per_rare": per_rare,
        "nll": negative_log_likelihood(softmax(logits), labels),
        "ece_uncalibrated": expected_calibration_error(softmax(logits), labels),
        "temperature_oof": fit.temperature,
        "ece_oof_t": expected_calibration_error(probs, labels),
        "steps": float(np.mean([r.get("steps") or 0 for r in by_fold.values()])),
        "best_step": float(np.mean([r.get("best_step") or 0 for r in by_fold.values()])),
        "train_seconds": float(
            np.mean([r.get("train_seconds") or r["wall_seconds"] for r in by_fold.values()])
        ),
        **attack_scores(by_fold),
    }


def attack_scores(by_fold: dict) -> dict:
    """OOF flip and goal rates under the val phrasings: injections (mean over the injection attacks) and
    character attacks (mean), against each fold's own clean predictions; {} for runs recorded before."""
    from manga_intent.robustness import ATTACKS_BY_NAME

    folds = list(by_fold.values())
    if not all("attacked" in r for r in folds):
        return {}
    flips: dict[str, list[bool]] = {}
    goals: dict[str, list[bool]] = {}
    for r in folds:
        clean = np.asarray(r["logits"]).argmax(1)
        for name, got in r["attacked"].items():
            predicted, injected = np.asarray(got["predicted"]), np.asarray(got["injected"])
            flips.setdefault(name, []).extend(predicted != clean)
            goals.setdefault(name, []).extend((predicted == injected) & (predicted != clean))
    injection = [n for n in flips if ATTACKS_BY_NAME[n].has_goal]
    character = [n for n in flips if not ATTACKS_BY_NAME[n].has_goal]
    return {
        "injection_flip": float(np.mean([np.mean(flips[n]) for n in injection])),
        "injection_goal": float(np.mean([np.mean(goals[n]) for n in injection])),
        "character_flip": float(np.mean([np.mean(flips[n]) for n in character])),
        "per_attack_flip": {n: float(np.mean(v)) for n, v in flips.items()},
    }


def paired_vs(labels, logits_a, logits_b, *, n_boot: int = 5000, seed: int = 0) -> dict:
    """a - b on the same rows: accuracy difference with a bootstrap 95% CI over rows, exact McNemar p,
    and the macro-F1 difference with its bootstrap CI."""
    from manga_intent.compare import mcnemar_exact
    from manga_intent.metrics import macro_f1

    k = logits_a.shape[1]
    pa, pb = logits_a.argmax(1), logits_b.argmax(1)
    ca, cb = pa == labels, pb == labels
    rng = np.random.default_rng(seed)
    n = len(labels)
    acc_boot, f1_boot = [], []
    for _ in range(n_boot):
        s = rng.integers(0, n, n)
        acc_boot.append(ca[s].mean() - cb[s].mean())
        f1_boot.append(macro_f1(labels[s], pa[s], k) - macro_f1(labels[s], pb[s], k))
    return {
        "d_accuracy": float(ca.mean() - cb.mean()),
        "d_accuracy_ci": [float(np.percentile(acc_boot, 2.5)), float(np.percentile(acc_boot, 97.5))],
        "d_macro_f1": float(macro_f1(labels, pa, k) - macro_f1(labels, pb, k)),
        "d_macro_f1_ci": [float(np.percentile(f1_boot, 2.5)), float(np.percentile(f1_boot, 97.5))],
        "a_only": int((ca & ~cb).sum()),
        "b_only": int((~ca & cb).sum()),
        "mcnemar_p": mcnemar_exact(int((ca & ~cb).sum()), int((~ca & cb).sum())),
    }


def table(runs: list[dict], label_set_name: str, reference: str, n_boot: int) -> tuple[str, dict]:
    _, labels_all = label_set(label_set_name)
    ref = oof(runs, label_set_name, reference)
    variants = []
    for name in VARIANTS:
        got = oof(runs, label_set_name, name)
        if got is not None:
            variants.append((name, got))
    if not variants:
        return f"(no complete variants for {label_set_name})", {}
    first_labels = variants[0][1][1]
    rare = rare_ids(first_labels, len(labels_all))
    rare_names = [labels_all[c] for c in rare]
    header = [
        "variant",
        "what changes",
        "OOF acc",
        "OOF macro-F1",
        *[f"{n} acc" for n in rare_names],
        "NLL (T=1)",
        "T on OOF",
        "steps (best)",
        "inj flip / goal (val phrasings)",
        "char-attack flip",
        f"Δacc vs {reference} [95% CI]",
        "ΔF1 [95% CI]",
        "McNemar p",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    data = {}
    for name, (rows, labels, logits, by_fold) in variants:
        s = variant_scores(labels, logits, by_fold)
        cmp = None
        if ref is not None and name != reference and np.array_equal(ref[0], rows):
            cmp = paired_vs(labels, logits, ref[2], n_boot=n_boot)
        data[name] = {"scores": s, "vs_reference": cmp}
        cells = [
            name,
            VARIANTS[name].note,
            f"{s['accuracy'] * 100:.1f}%",
            f"{s['macro_f1']:.3f}",
            *[f"{s['per_rare'].get(c, float('nan')) * 100:.1f}%" for c in rare],
            f"{s['nll']:.3f}",
            f"{s['temperature_oof']:.2f}",
            f"{s['steps']:.0f} ({s['best_step']:.0f})",
            f"{s['injection_flip']:.3f} / {s['injection_goal']:.3f}" if "injection_flip" in s else "–",
            f"{s['character_flip']:.3f}" if "character_flip" in s else "–",
        ]
        if cmp:
            lo, hi = cmp["d_accuracy_ci"]
            flo, fhi = cmp["d_macro_f1_ci"]
            cells += [
                f"{cmp['d_accuracy'] * 100:+.1f}pp [{lo * 100:+.1f}, {hi * 100:+.1f}]",
                f"{cmp['d_macro_f1']:+.3f} [{flo:+.3f}, {fhi:+.3f}]",
                f"{cmp['mcnemar_p']:.3f}",
            ]
        else:
            cells += ["(reference)" if name == reference else "–", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    k = variants[0][1][3][0]["k"]
    n = len(first_labels)
    head = f"**{label_set_name}**: {k}-fold CV on the train+val pool ({n} rows, {len(labels_all)} labels)"
    return head + "\n\n" + "\n".join(lines), data


def cmd_table(args) -> None:
    runs = read_runs(Path(args.out))
    sets = [args.label_set] if args.label_set else sorted({r["label_set"] for r in runs}, key=_set_order)
    everything = {}
    for name in sets:
        text, data = table(runs, name, args.reference, args.bootstrap)
        everything[name] = data
        print(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2) + "\n", encoding="utf-8")


def _set_order(name: str) -> int:
    return (
        ["seed", "seed5", "seed3", "gen80"].index(name) if name in ("seed", "seed5", "seed3", "gen80") else 9
    )


def cmd_temperature(args) -> None:
    from manga_intent.calibration import fit_temperature

    got = oof(read_runs(Path(args.out)), args.label_set, args.variant)
    if got is None:
        raise SystemExit(f"{args.variant} on {args.label_set}: folds missing")
    _, labels, logits, _ = got
    fit = fit_temperature(logits, labels)
    print(json.dumps({"label_set": args.label_set, "variant": args.variant, **fit.as_dict()}))


def calibration_strategies(by_fold: dict) -> dict[str, np.ndarray]:
    """Calibrated probabilities of every out-of-fold row under each way of fitting the calibrator.

    Each fold's held-out rows are calibrated only from data that fold's model may see: its own inner
    validation split (what `manga-intent train` does with its val split), or the out-of-fold logits of the
    *other* folds (what `--calibration cv` does with k extra trainings).
    """
    from manga_intent.calibration import fit_temperature
    from manga_intent.calibrators import choose_calibrator
    from manga_intent.inference import softmax

    k = len(by_fold)
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for f in range(k):
        run = by_fold[f]
        held = np.asarray(run["logits"], dtype=float)
        val, val_labels = (
            np.asarray(run["inner_val_logits"], dtype=float),
            np.asarray(run["inner_val_labels"]),
        )
        others = [by_fold[g] for g in range(k) if g != f]
        oof_logits = np.concatenate([np.asarray(r["logits"], dtype=float) for r in others])
        oof_labels = np.concatenate([np.asarray(r["labels"]) for r in others])
        parts["none (T = 1)"].append(softmax(held))
        parts["temperature on inner val"].append(softmax(held, fit_temperature(val, val_labels).temperature))
        parts["chosen family on inner val (shipped)"].append(
            choose_calibrator(val, val_labels).calibrator.probabilities(held)
        )
        parts["temperature on other folds' OOF"].append(
            softmax(held, fit_temperature(oof_logits, oof_labels).temperature)
        )
        parts["chosen family on other folds' OOF"].append(
            choose_calibrator(oof_logits, oof_labels).calibrator.probabilities(held)
        )
    return {name: np.concatenate(p) for name, p in parts.items()}


def cmd_calibrators(args) -> None:
    """Out of fold, pooled over every pool row: which way of fitting the calibrator calibrates best."""
    from manga_intent.metrics import (
        brier_score,
        debiased_calibration_error,
        ece_noise_floor,
        expected_calibration_error,
        negative_log_likelihood,
    )

    got = oof(read_runs(Path(args.out)), args.label_set, args.variant)
    if got is None or not all("inner_val_logits" in r for r in got[3].values()):
        raise SystemExit(f"{args.variant} on {args.label_set}: folds or inner validation logits missing")
    by_fold = got[3]
    labels = np.concatenate([np.asarray(by_fold[f]["labels"]) for f in range(len(by_fold))])
    strategies = calibration_strategies(by_fold)
    reference = strategies["chosen family on inner val (shipped)"]
    rng = np.random.default_rng(0)
    boots = [rng.integers(0, len(labels), len(labels)) for _ in range(args.bootstrap)]
    print(
        f"{args.variant} on {args.label_set}: {len(labels)} out-of-fold rows, "
        f"inner val {sum(len(r['inner_val_labels']) for r in by_fold.values()) // len(by_fold)} rows a fold"
    )
    print(
        "| calibrator fitted on | ECE | floor mean / p95 | debiased L2 | NLL | Brier | conf − acc "
        "| ΔECE vs shipped [95% CI] |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    for name, probs in strategies.items():
        floor = ece_noise_floor(probs)
        ece = expected_calibration_error(probs, labels)
        deltas = [
            expected_calibration_error(probs[b], labels[b])
            - expected_calibration_error(reference[b], labels[b])
            for b in boots
        ]
        lo, hi = np.percentile(deltas, [2.5, 97.5])
        gap = float(probs.max(1).mean() - (probs.argmax(1) == labels).mean())
        rows[name] = {
            "ece": ece,
            "floor": floor,
            "debiased_l2": debiased_calibration_error(probs, labels),
            "nll": negative_log_likelihood(probs, labels),
            "brier": brier_score(probs, labels),
            "overconfidence": gap,
            "delta_ece_ci": [float(lo), float(hi)],
        }
        print(
            f"| {name} | {ece:.4f} | {floor['mean']:.4f} / {floor['p95']:.4f} | "
            f"{rows[name]['debiased_l2']:.4f} | {rows[name]['nll']:.4f} | {rows[name]['brier']:.4f} | "
            f"{gap:+.4f} | {ece - expected_calibration_error(reference, labels):+.4f} [{lo:+.4f}, {hi:+.4f}] |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def cmd_flips(args) -> None:
    """Where injected instructions move predictions out of fold (val phrasings): per variant, the label each
    flipped prediction went to, counted over every injection attack."""
    from manga_intent.robustness import ATTACKS_BY_NAME

    runs = read_runs(Path(args.out))
    label_names = pool_and_folds(args.label_set, 5)[2]
    for variant in args.variants:
        got = oof(runs, args.label_set, variant)
        if got is None or not all("attacked" in r for r in got[3].values()):
            raise SystemExit(f"{variant} on {args.label_set}: folds or attacked predictions missing")
        went, total = np.zeros(len(label_names), dtype=int), 0
        for r in got[3].values():
            clean = np.asarray(r["logits"]).argmax(1)
            for name, attacked in r["attacked"].items():
                if ATTACKS_BY_NAME[name].has_goal:
                    predicted = np.asarray(attacked["predicted"])
                    total += len(predicted)
                    went += np.bincount(predicted[predicted != clean], minlength=len(label_names))
        order = np.argsort(-went)
        print(
            f"{variant}: {went.sum()} of {total} injected rows flipped; to "
            + ", ".join(f"{label_names[i]} {went[i]}" for i in order if went[i])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--plan", default="main", choices=sorted(PLANS))
    p.add_argument("--budget-minutes", type=float, default=12.0)
    p.add_argument("--out", default=str(RESULTS))
    p = sub.add_parser("table")
    p.add_argument("--label-set", default=None)
    p.add_argument("--reference", default="v2")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--json", default=None)
    p = sub.add_parser("flips")
    p.add_argument("variants", nargs="+")
    p.add_argument("--label-set", default="seed")
    p.add_argument("--out", default=str(RESULTS))
    p = sub.add_parser("temperature")
    p.add_argument("--label-set", default="seed")
    p.add_argument("--variant", default="v2")
    p.add_argument("--out", default=str(RESULTS))
    p = sub.add_parser("calibrators")
    p.add_argument("--label-set", default="seed")
    p.add_argument("--variant", default="shipped")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--json", default=None)
    args = parser.parse_args()
    commands = {
        "run": cmd_run,
        "table": cmd_table,
        "flips": cmd_flips,
        "temperature": cmd_temperature,
        "calibrators": cmd_calibrators,
    }
    commands[args.command](args)


if __name__ == "__main__":
    main()
