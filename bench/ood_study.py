"""OOD, calibration and robustness study on the shipped data: every variant x seed, side by side.

    flock /tmp/manga-cpu.lock .venv/bin/python -m bench.ood_study train --variant base --seed 42
    flock /tmp/manga-cpu.lock .venv/bin/python -m bench.ood_study evaluate --variant base --seed 42
    .venv/bin/python -m bench.ood_study report                 # tables from validation, test and held-out OOD
    flock /tmp/manga-cpu.lock .venv/bin/python -m bench.ood_study latency --variant base --seed 42
    .venv/bin/python -m bench.ood_study gate-report            # golden set: a gate report, read last

`train` trains one model and saves it; `evaluate` measures it (each call is one CPU-lock acquisition of a
few minutes) and writes bench/results/ood/<variant>-s<seed>/results.json (validation fit, test split,
held-out OOD half, robustness) and golden.npz (golden-set logits, read only by `gate-report`). Variants:

- `base`: recipe v2 as shipped before this issue;
- `oe_uniform`: + outlier exposure with the uniform-target loss (OE pool: half the fitting OOD rows + text
  generated from the training templates);
- `oe_class`: + the same OE pool as rows of an explicit `out_of_scope` class;
- `aug`: + adversarial augmentation (training attack phrasings only);
- `oe_uniform_aug`: both.
- `oe_uniform_adv`, `oe_uniform_adv2`: outlier exposure + adversarial training as an auxiliary batch of 16
  attacked rows a step (weight 1 or 2; composed training phrasings, `TrainConfig.adversarial_weight`);
  `oe_uniform_adv32`: weight 1 with 32 attacked rows a step (today's default); `oe_uniform_adv32_fd`: the same
  with the cheaper dropout masks (as shipped); `oe8_adv16_fd`: half the defences' rows (8 out-of-scope + 16
  attacked a step, not adopted); `oe_uniform_adv32_fd_gloss`: as shipped with the JA-EN glossary;
  `oe_uniform_adv32_fd_gloss_targeted`: the same with the 65 targeted escalation rows in training, as the
  asset graph's `seed_corpus` adds them (the champion's training data); `..._targeted_ema`: the same with
  an EMA of the weights (decay 0.98).

Robustness is measured twice: validation messages under the `val` phrasings (what a defence is chosen on)
and test messages under the `heldout` phrasings (the report).

Every choice inside a run (calibrator family, detector, thresholds) is made on validation data by the same
core functions `manga-intent train` uses; test, held-out OOD and golden numbers are only reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from manga_intent.calibrator_fit import (
    Outputs,
    eager_outputs,
    fit_serving_calibration_from_outputs,
    public,
    score_outputs,
    shipped_ood_pools,
)
from manga_intent.data import SPLIT_SEED, Example, load_jsonl, make_splits
from manga_intent.labelled_pool import with_targeted_rows
from manga_intent.ood import ood_report
from manga_intent.robustness import CLEANERS, adversarial_augmentation, run_robustness
from manga_intent.shipped_data import GOLDEN, SEED_CORPUS, TARGETED, ood_heldout_pool, read_rows
from manga_intent.synthetic.mix import cap_synthetic_rows
from manga_intent.taxonomy import INTENTS

RESULTS = Path(__file__).resolve().parent / "results" / "ood"
SYNTHETIC_KEPT = "bench/results/synthetic/kept_demo.jsonl"
OUT_OF_SCOPE = "out_of_scope"
_CHAMPION_DATA = {
    "oe_weight": 0.5,
    "adv_weight": 1.0,
    "adv_batch": 32,
    "fast_dropout": True,
    "glossary": "on",
    "targeted": True,
}
VARIANTS = {
    "base": {},
    "oe_uniform": {"oe_weight": 0.5},
    "oe_class": {"oos_class": True},
    "aug": {"augment": 0.5},
    "oe_uniform_aug": {"oe_weight": 0.5, "augment": 0.5},
    "oe_class_aug": {"oos_class": True, "augment": 0.5},
    "oe_uniform_adv": {"oe_weight": 0.5, "adv_weight": 1.0, "adv_batch": 16},
    "oe_uniform_adv2": {"oe_weight": 0.5, "adv_weight": 2.0, "adv_batch": 16},
    "oe_uniform_adv32": {"oe_weight": 0.5, "adv_weight": 1.0, "adv_batch": 32},
    # the variants above were recorded with torch's dropout; this one with manga_intent.fast_dropout
    "oe_uniform_adv32_fd": {"oe_weight": 0.5, "adv_weight": 1.0, "adv_batch": 32, "fast_dropout": True},
    "oe_uniform_adv32_fd_gloss": {
        "oe_weight": 0.5,
        "adv_weight": 1.0,
        "adv_batch": 32,
        "fast_dropout": True,
        "glossary": "on",
    },
    # as the asset graph trains the champion: its seed_corpus adds the targeted escalation rows to training
    "oe_uniform_adv32_fd_gloss_targeted": _CHAMPION_DATA,
    "oe_uniform_adv32_fd_gloss_targeted_ema": {**_CHAMPION_DATA, "ema_decay": 0.98},
    # + the consensus-kept synthetic rows (every kept row: trained_model.synthetic_share 1, the default until
    # 2026-12-07): the kept set of `make demo`'s synthetic_set (n 1500), as cv plan `synthetic` reads it
    "oe_uniform_adv32_fd_gloss_targeted_synthetic": {**_CHAMPION_DATA, "synthetic": SYNTHETIC_KEPT},
    # the same kept set capped at the seed's 10% of the training rows (manga_intent.synthetic.mix): a uniform
    # sample, or the budget dealt evenly over intents (rare intents get all they have up to an equal share)
    "oe_uniform_adv32_fd_gloss_targeted_syn10": {
        **_CHAMPION_DATA,
        "synthetic": SYNTHETIC_KEPT,
        "synthetic_share": 0.1,
        "synthetic_balance": "proportional",
    },
    "oe_uniform_adv32_fd_gloss_targeted_syn10_even": {
        **_CHAMPION_DATA,
        "synthetic": SYNTHETIC_KEPT,
        "synthetic_share": 0.1,
        "synthetic_balance": "per_intent",
    },
    # selective backprop of the defences' rows (TrainConfig.auxiliary_backprop_share), and R-Drop with EMA
    "oe_uniform_adv32_fd_gloss_targeted_ema_sb125": {**_CHAMPION_DATA, "ema_decay": 0.98, "sb": 0.125},
    "oe_uniform_adv32_fd_gloss_targeted_ema_sb25": {**_CHAMPION_DATA, "ema_decay": 0.98, "sb": 0.25},
    "oe_uniform_adv32_fd_gloss_targeted_ema_rdrop": {**_CHAMPION_DATA, "ema_decay": 0.98, "rdrop": 1.0},
    "oe8_adv16_fd": {
        "oe_weight": 0.5,
        "oe_batch": 8,
        "adv_weight": 1.0,
        "adv_batch": 16,
        "fast_dropout": True,
    },
}


def run_dir(variant: str, seed: int) -> Path:
    return RESULTS / f"{variant}-s{seed}"


def _in_scope(outputs: Outputs, oos: bool) -> Outputs:
    """For the explicit-class variant: the in-scope columns (the detector and calibrator see those)."""
    return Outputs(outputs.logits[:, : len(INTENTS)], outputs.features) if oos else outputs


def cmd_train(args) -> int:
    from manga_intent.training import TrainConfig, train_classifier

    spec = VARIANTS[args.variant]
    splits = make_splits(load_jsonl(SEED_CORPUS.path).examples, seed=SPLIT_SEED)
    pools = shipped_ood_pools()
    oos = bool(spec.get("oos_class"))
    labels = [*INTENTS, OUT_OF_SCOPE] if oos else list(INTENTS)
    train_rows = list(splits.train)
    if spec.get("targeted"):
        targeted = with_targeted_rows(
            [*splits.train, *splits.val, *splits.test], load_jsonl(TARGETED.path).examples
        )
        train_rows += [e for e in targeted if e.meta.get("provenance") == "targeted"]
    if spec.get("synthetic"):
        kept = Path(__file__).resolve().parents[1] / spec["synthetic"]
        if not kept.exists():
            raise SystemExit(
                f"{kept} not found: copy a synthetic_set's kept rows there (see bench/cv_plan.py)"
            )
        rows = [replace(e, split="train") for e in load_jsonl(kept).examples]
        if "synthetic_share" in spec:
            rows = cap_synthetic_rows(
                rows,
                n_real=len(train_rows),
                max_share=spec["synthetic_share"],
                seed=args.seed,
                balance=spec["synthetic_balance"],
            )
        train_rows += rows
    if spec.get("augment"):
        train_rows += adversarial_augmentation(
            splits.train, INTENTS, fraction=spec["augment"], seed=args.seed
        )
    if oos:
        train_rows += [Example(t, OUT_OF_SCOPE, "train") for t in pools.train_texts]
    config = replace(
        TrainConfig(),
        init_seed=args.seed,
        sampler_seed=args.seed,
        outlier_exposure_weight=spec.get("oe_weight", 0.0),
        adversarial_weight=spec.get("adv_weight", 0.0),
        adversarial_batch_size=spec.get("adv_batch", TrainConfig().adversarial_batch_size),
        outlier_batch_size=spec.get("oe_batch", TrainConfig().outlier_batch_size),
        fast_dropout=spec.get("fast_dropout", False),
        ja_en_glossary=spec.get("glossary", "off"),  # the variants before it read the base tokenizer
        ema_decay=spec.get("ema_decay", 0.0),
        auxiliary_backprop_share=spec.get("sb", 1.0),
        rdrop_alpha=spec.get("rdrop", 0.0),
    )
    if args.max_steps:
        config = replace(config, max_steps=args.max_steps)
    started = time.perf_counter()
    result = train_classifier(
        train_rows,
        splits.val,
        labels,
        config,
        progress=not args.quiet,
        base_model=args.base_model,
        outlier_texts=pools.train_texts if spec.get("oe_weight") else (),
    )
    train_seconds = time.perf_counter() - started
    from manga_intent.model_io import save_model

    folder = run_dir(args.variant, args.seed)
    save_model(
        result.model,
        result.tokenizer,
        folder / "model",
        {"labels": labels, "recipe": {"max_length": config.max_length}},
    )
    info = {
        "variant": args.variant,
        "seed": args.seed,
        "train_seconds": train_seconds,
        "steps": result.steps,
        "best_step": result.best.step,
        "train_rows": len(train_rows),
        "pools": pools.sources,
        "labels": labels,
        "notes": result.notes,
    }
    (folder / "train.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"{args.variant} seed {args.seed}: trained {result.steps} steps in {train_seconds:.0f}s")
    return 0


def cmd_evaluate(args) -> int:
    """Everything measured on a trained study model (its own CPU-lock acquisition)."""
    from manga_intent.model_io import load_trained

    folder = run_dir(args.variant, args.seed)
    info = json.loads((folder / "train.json").read_text())
    model, tok, card = load_trained(folder / "model")
    labels = info["labels"]
    oos = OUT_OF_SCOPE in labels
    splits = make_splits(load_jsonl(SEED_CORPUS.path).examples, seed=SPLIT_SEED)
    pools = shipped_ood_pools()
    max_length = card["recipe"]["max_length"]

    def run(texts, cleaner=CLEANERS["clean_text"]):
        return eager_outputs(model, tok, texts, max_length=max_length, cleaner=cleaner)

    index = {label: i for i, label in enumerate(INTENTS)}
    y = {
        name: np.array([index[e.label] for e in part])
        for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    raw = {
        name: run([e.text for e in part])
        for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    held = ood_heldout_pool()
    raw["ood_val"], raw["ood_heldout"] = run(pools.val_texts), run([r["text"] for r in held])
    out = {k: _in_scope(v, oos) for k, v in raw.items()}
    fitted = fit_serving_calibration_from_outputs(
        INTENTS,
        train=out["train"],
        train_labels=y["train"],
        val=out["val"],
        val_labels=y["val"],
        ood_val=out["ood_val"],
    )
    categories = [r["category"] for r in held]
    test_report = score_outputs(
        fitted, out["test"], y["test"], INTENTS, ood=out["ood_heldout"], ood_categories=categories
    )
    # every candidate detector on the held-out half, at its own validation threshold
    from manga_intent.ood import fit_feature_stats, fit_ood_detector

    stats = fit_feature_stats(out["train"].features, y["train"], len(INTENTS))
    selection = fit_ood_detector(
        val_logits=out["val"].logits,
        pool_logits=out["ood_val"].logits,
        val_features=out["val"].features,
        pool_features=out["ood_val"].features,
        stats=stats,
    )
    per_detector = []
    for kind, detector in selection.candidates.items():
        rep = ood_report(
            detector.score(out["test"].logits, out["test"].features),
            detector.score(out["ood_heldout"].logits, out["ood_heldout"].features),
            detector.threshold,
            categories,
        )
        val_row = next(r for r in selection.table if r["detector"] == kind)
        per_detector.append(
            {
                "detector": kind,
                "val_auroc": val_row["auroc"],
                "chosen": val_row["chosen"],
                **{
                    k: rep[k]
                    for k in ("auroc", "aupr", "fpr_at_95_tpr", "tpr_at_threshold", "in_domain_flag_rate")
                },
                "per_category_tpr": {c: v["tpr_at_threshold"] for c, v in rep["per_category"].items()},
            }
        )
    if oos:  # the explicit class's own score: P(out_of_scope), thresholded on validation like the others
        from manga_intent.ood import threshold_at_flag_rate

        def p_oos(o):
            z = o.logits - o.logits.max(1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            return p[:, -1]

        val_s, pool_s = p_oos(raw["val"]), p_oos(raw["ood_val"])
        thr = threshold_at_flag_rate(val_s)
        rep = ood_report(p_oos(raw["test"]), p_oos(raw["ood_heldout"]), thr, categories)
        per_detector.append(
            {
                "detector": "oos_class_probability",
                "val_auroc": ood_report(val_s, pool_s, thr)["auroc"],
                "chosen": None,
                **{
                    k: rep[k]
                    for k in ("auroc", "aupr", "fpr_at_95_tpr", "tpr_at_threshold", "in_domain_flag_rate")
                },
                "per_category_tpr": {c: v["tpr_at_threshold"] for c, v in rep["per_category"].items()},
            }
        )
        full_pred = raw["test"].logits.argmax(1)
        test_report["accuracy_with_oos_argmax"] = float((full_pred == y["test"]).mean())
    robustness = {}
    for phrasings, part in (("heldout", splits.test), ("train", splits.test), ("val", splits.val)):
        for cleaner_name, cleaner in CLEANERS.items():

            def predict(texts, cleaner=cleaner):
                return run(texts, cleaner).logits.argmax(
                    1
                )  # with the explicit class, predicting it is a flip

            def flag(texts, cleaner=cleaner):
                o = _in_scope(run(texts, cleaner), oos)
                return fitted.detector.flags(o.logits, o.features)

            report = run_robustness(predict, part, INTENTS, phrasings=phrasings, seed=0, flag_ood=flag)
            robustness[f"{phrasings}/{cleaner_name}"] = report.as_dict()
    golden = read_rows(GOLDEN.path)  # scored now, read only by `gate-report`
    g = run([r["text"] for r in golden])
    golden_attacks = run_robustness(
        lambda texts: run(texts).logits[:, : len(INTENTS)].argmax(1),
        [Example(r["text"], r["label"]) for r in golden],
        INTENTS,
        phrasings="heldout",
        seed=0,
    )
    (folder / "golden_robustness.json").write_text(
        json.dumps(golden_attacks.as_dict(), indent=2) + "\n", encoding="utf-8"
    )
    np.savez(
        folder / "golden.npz",
        logits=g.logits,
        features=g.features,
        labels=np.array([index[r["label"]] for r in golden]),
    )
    fitted.save(folder / "model")
    results = {
        **info,
        "calibration": {
            "calibrator_choice": fitted.calibrator_choice,
            "detector_selection": fitted.detector_selection,
            "policy": fitted.policy.as_dict(),
            "validation": public(fitted.validation),
        },
        "test": public(test_report),
        "per_detector_heldout": per_detector,
        "robustness": robustness,
    }
    (folder / "results.json").write_text(
        json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8"
    )
    t = test_report
    print(
        f"{args.variant} seed {args.seed}: test acc {t['accuracy']:.4f} ECE {t['ece']:.4f} "
        f"({t['calibrator']}); OOD {t['ood_detector']} heldout AUROC {t['ood']['auroc']:.3f} "
        f"TPR {t['ood']['tpr_at_threshold']:.3f} flags {t['ood']['in_domain_flag_rate']:.3f}; "
        f"inj flip {robustness['heldout/clean_text']['injection_flip_rate']:.3f} "
        f"goal {robustness['heldout/clean_text']['injection_goal_rate']:.3f}"
    )
    return 0


def _load_all() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*/results.json"))]


def _mean(values):
    values = [v for v in values if v is not None]
    return (float(np.mean(values)), float(np.std(values)), len(values)) if values else (None, None, 0)


def _fmt(stat, digits=3):
    m, s, n = stat
    return "n/a" if m is None else (f"{m:.{digits}f} ± {s:.{digits}f}" if n > 1 else f"{m:.{digits}f}")


def _val_attacks(run: dict, key: str) -> float | None:
    """A robustness summary value on validation messages under the val phrasings (runs before: None)."""
    return (run["robustness"].get("val/clean_text") or {}).get(key)


def cmd_report(args) -> int:
    runs = _load_all()
    if not runs:
        print("no runs yet", file=sys.stderr)
        return 1
    lines = []
    by_variant: dict[str, list[dict]] = {}
    for r in runs:
        by_variant.setdefault(r["variant"], []).append(r)
    lines.append("## Validation: what the defaults are chosen on (mean ± sd over seeds)\n")
    lines.append(
        "| variant | seeds | val acc | val NLL | val ECE (cal) | detector(s) | val OOD AUROC | val OOD TPR @ op | "
        "val inj flip / goal (val phrasings) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for variant, rs in sorted(by_variant.items()):
        v = [r["calibration"]["validation"] for r in rs]
        lines.append(
            f"| {variant} | {','.join(str(r['seed']) for r in rs)} | {_fmt(_mean([x['accuracy'] for x in v]))} | "
            f"{_fmt(_mean([x['nll'] for x in v]))} | {_fmt(_mean([x['ece'] for x in v]))} | "
            f"{', '.join(sorted({x['ood_detector'] for x in v}))} | "
            f"{_fmt(_mean([(x.get('ood') or {}).get('auroc') for x in v]))} | "
            f"{_fmt(_mean([(x.get('ood') or {}).get('tpr_at_threshold') for x in v]))} | "
            f"{_fmt(_mean([_val_attacks(r, 'injection_flip_rate') for r in rs]))} / "
            f"{_fmt(_mean([_val_attacks(r, 'injection_goal_rate') for r in rs]))} |"
        )
    lines.append("\n## Variants (mean ± sd over seeds; test split and held-out OOD half, chosen detector)\n")
    lines.append(
        "| variant | seeds | test acc | test ECE | classwise ECE | detector(s) | held-out AUROC | TPR @ op | "
        "test flag rate | inj flip (held-out) | inj goal (held-out) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for variant, rs in by_variant.items():
        t = [r["test"] for r in rs]
        rob = [r["robustness"]["heldout/clean_text"] for r in rs]
        lines.append(
            f"| {variant} | {','.join(str(r['seed']) for r in rs)} | {_fmt(_mean([x['accuracy'] for x in t]))} | "
            f"{_fmt(_mean([x['ece'] for x in t]))} | {_fmt(_mean([x['classwise_ece'] for x in t]))} | "
            f"{', '.join(sorted({x['ood_detector'] for x in t}))} | {_fmt(_mean([x['ood']['auroc'] for x in t]))} | "
            f"{_fmt(_mean([x['ood']['tpr_at_threshold'] for x in t]))} | "
            f"{_fmt(_mean([x['ood']['in_domain_flag_rate'] for x in t]))} | "
            f"{_fmt(_mean([x['injection_flip_rate'] for x in rob]))} | {_fmt(_mean([x['injection_goal_rate'] for x in rob]))} |"
        )
    lines.append("\n## Detector x variant on the held-out OOD half (threshold at <= 5% validation flags)\n")
    lines.append(
        "| variant | detector | val AUROC | held-out AUROC | AUPR | FPR@95TPR | TPR @ op | test flag rate |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for variant, rs in by_variant.items():
        kinds = [d["detector"] for d in rs[0]["per_detector_heldout"]]
        for kind in kinds:
            rows = [next(d for d in r["per_detector_heldout"] if d["detector"] == kind) for r in rs]
            if not args.all_detectors and "combined" in kind and not any(d["chosen"] for d in rows):
                continue
            lines.append(
                f"| {variant} | {kind}{' *' if any(d['chosen'] for d in rows) else ''} | "
                f"{_fmt(_mean([d['val_auroc'] for d in rows]))} | {_fmt(_mean([d['auroc'] for d in rows]))} | "
                f"{_fmt(_mean([d['aupr'] for d in rows]))} | {_fmt(_mean([d['fpr_at_95_tpr'] for d in rows]))} | "
                f"{_fmt(_mean([d['tpr_at_threshold'] for d in rows]))} | "
                f"{_fmt(_mean([d['in_domain_flag_rate'] for d in rows]))} |"
            )
    lines.append("\n## Per OOD category, chosen detector (held-out half)\n")
    cats = sorted(runs[0]["test"]["ood"]["per_category"])
    lines.append("| variant | " + " | ".join(f"{c} TPR / AUROC" for c in cats) + " |")
    lines.append("|---|" + "---|" * len(cats))
    for variant, rs in by_variant.items():
        cells = []
        for c in cats:
            pc = [r["test"]["ood"]["per_category"][c] for r in rs]
            cells.append(
                f"{_fmt(_mean([p['tpr_at_threshold'] for p in pc]), 2)} / {_fmt(_mean([p['auroc'] for p in pc]), 2)}"
            )
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("\n## Attacks on the test split: flip / goal rate (held-out phrasings)\n")
    attacks = [a["attack"] for a in runs[0]["robustness"]["heldout/clean_text"]["attacks"]]
    lines.append("| variant | normalisation | " + " | ".join(attacks) + " |")
    lines.append("|---|---|" + "---|" * len(attacks))
    for variant, rs in by_variant.items():
        for cleaner in CLEANERS:
            cells = []
            for a in attacks:
                rows = [
                    next(x for x in r["robustness"][f"heldout/{cleaner}"]["attacks"] if x["attack"] == a)
                    for r in rs
                ]
                flip = _mean([x["flip_rate"] for x in rows])
                goal = _mean([x["goal_rate"] for x in rows])
                cells.append(f"{flip[0]:.3f}" + (f" / {goal[0]:.3f}" if goal[0] is not None else ""))
            lines.append(f"| {variant} | {cleaner} | " + " | ".join(cells) + " |")
    lines.append("\n## Calibration and routing (test split + held-out OOD half)\n")
    lines.append(
        "| variant | calibrator(s) | test ECE uncal → cal | test NLL | AURC (joint, 5% OOD mix) | "
        "selective risk | coverage | clarify_below | in-domain route/clarify/fallback | OOD route/clarify/fallback |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for variant, rs in by_variant.items():
        t = [r["test"] for r in rs]
        rc = [x["risk_coverage"] for x in t]
        lines.append(
            f"| {variant} | {', '.join(sorted({x['calibrator'] for x in t}))} | "
            f"{_fmt(_mean([x['ece_uncalibrated'] for x in t]))} → {_fmt(_mean([x['ece'] for x in t]))} | "
            f"{_fmt(_mean([x['nll'] for x in t]))} | {_fmt(_mean([x['aurc_joint'] for x in rc]), 4)} | "
            f"{_fmt(_mean([x['selective_risk'] for x in rc]))} | {_fmt(_mean([x['coverage'] for x in rc]))} | "
            f"{_fmt(_mean([x['clarify_below'] for x in rc]))} | "
            + "/".join(
                f"{np.mean([x['in_domain'][k] for x in rc]):.2f}" for k in ("route", "clarify", "fallback")
            )
            + " | "
            + "/".join(
                f"{np.mean([x['out_of_scope'][k] for x in rc]):.2f}" for k in ("route", "clarify", "fallback")
            )
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


def cmd_latency(args) -> int:
    """Single-message P95 of the compiled artifact with each detector swapped in (same ONNX graph)."""
    from manga_intent.calibrator_fit import ServingCalibration
    from manga_intent.compiled import CompiledClassifier, build_artifact
    from manga_intent.model_io import load_trained
    from manga_intent.ood import fit_feature_stats, fit_ood_detector

    folder = run_dir(args.variant, args.seed)
    model, tok, card = load_trained(folder / "model")
    fitted = ServingCalibration.load(folder / "model")
    splits = make_splits(load_jsonl(SEED_CORPUS.path).examples, seed=SPLIT_SEED)
    texts = [e.text for e in splits.test]
    build_artifact(
        model,
        tok,
        folder / "compiled",
        labels=card["labels"],
        calibration=fitted,
        check_texts=texts[:20],
        max_length=card["recipe"]["max_length"],
        backend="onnx",
    )
    compiled = CompiledClassifier(folder / "compiled")
    pools = shipped_ood_pools()
    index = {label: i for i, label in enumerate(INTENTS)}
    tr, va, pool = (
        compiled.outputs([e.text for e in splits.train]),
        compiled.outputs([e.text for e in splits.val]),
        compiled.outputs(pools.val_texts),
    )
    stats = fit_feature_stats(tr.features, np.array([index[e.label] for e in splits.train]), len(INTENTS))
    selection = fit_ood_detector(
        val_logits=va.logits,
        pool_logits=pool.logits,
        val_features=va.features,
        pool_features=pool.features,
        stats=stats,
    )
    rows = []
    for kind in ("msp", "energy", "mahalanobis", "knn", fitted.detector.kind):
        compiled.detector = selection.candidates[kind]
        for text in texts[:20]:
            compiled.classify([text])
        samples = []
        for text in texts:
            start = time.perf_counter()
            compiled.classify([text])
            samples.append((time.perf_counter() - start) * 1000)
        rows.append(
            {
                "detector": kind,
                "p50_ms": float(np.percentile(samples, 50)),
                "p95_ms": float(np.percentile(samples, 95)),
                "n": len(samples),
            }
        )
    for row in rows:
        print(json.dumps(row))
    (folder / "latency.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def cmd_gate_report(args) -> int:
    """GATE REPORT: golden-set accuracy (paired McNemar vs the reference variant, same seed), golden ECE and
    the injection flip / goal rates on golden messages (held-out phrasings)."""
    from manga_intent.calibrator_fit import ServingCalibration  # noqa: F401 - documented dependency
    from manga_intent.compare import mcnemar_one_sided
    from manga_intent.metrics import expected_calibration_error

    runs = {(r["variant"], r["seed"]): r for r in _load_all()}
    lines = [
        "## GATE REPORT — golden set (read once, after every choice was made on validation)\n",
        f"| variant | seed | golden acc | {args.reference} golden acc | candidate-only right | "
        f"{args.reference}-only right | McNemar p (candidate worse) | McNemar p (candidate better) | "
        "golden ECE | golden injection flip / goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (variant, seed), r in sorted(runs.items()):
        base = runs.get((args.reference, seed))
        if base is None:
            continue
        probs, correct, golden_labels = _golden_outputs(variant, seed, r)
        _, base_correct, _ = _golden_outputs(args.reference, seed, base)
        b, c, p_worse = mcnemar_one_sided(correct, base_correct)
        _, _, p_better = mcnemar_one_sided(base_correct, correct)
        attacked = run_dir(variant, seed) / "golden_robustness.json"
        inj = json.loads(attacked.read_text()) if attacked.is_file() else None
        lines.append(
            f"| {variant} | {seed} | {correct.mean():.4f} | {base_correct.mean():.4f} | {b} | {c} | "
            f"{p_worse:.3f} | {p_better:.3f} | {expected_calibration_error(probs, golden_labels):.4f} | "
            + (f"{inj['injection_flip_rate']:.3f} / {inj['injection_goal_rate']:.3f} |" if inj else "– |")
        )
    lines += _golden_targets_table(runs)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


def _golden_outputs(variant: str, seed: int, run: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GATE REPORT input: (calibrated in-scope probabilities, correct?, labels) of one run on the golden set.
    With an explicit out-of-scope class, predicting it counts as wrong."""
    from manga_intent.calibrators import Calibrator

    g = np.load(run_dir(variant, seed) / "golden.npz")
    k = len(INTENTS)
    calibrator = Calibrator.from_dict(run["calibration"]["calibrator_choice"]["calibrator"])
    probs = calibrator.probabilities(g["logits"][:, :k])
    predicted = g["logits"].argmax(1) if g["logits"].shape[1] > k else probs.argmax(1)
    return probs, predicted == g["labels"], g["labels"]


def _golden_targets_table(runs: dict) -> list[str]:
    """GATE REPORT: golden accuracy on each rare intent and on the JP-EN segment (the recipe issue's
    targets: each rare intent >= 88%, JP-EN >= 85%), per run."""
    from manga_intent.metrics import rare_labels_from_shares
    from manga_intent.taxonomy import RARE_SHARE_THRESHOLD, SEED_TRAFFIC_SHARES

    if not runs:
        return []
    jp_en = np.array(["jp_en" in (r.get("segment") or []) for r in read_rows(GOLDEN.path)])
    rare = [
        INTENTS.index(label) for label in rare_labels_from_shares(SEED_TRAFFIC_SHARES, RARE_SHARE_THRESHOLD)
    ]
    rows = []
    for (variant, seed), r in sorted(runs.items()):
        _, correct, labels = _golden_outputs(variant, seed, r)
        cells = " | ".join(f"{correct[labels == i].mean():.3f}" for i in rare)
        rows.append(f"| {variant} | {seed} | {correct.mean():.4f} | {cells} | {correct[jp_en].mean():.3f} |")
    header = " | ".join(f"{INTENTS[i]} (n={int((labels == i).sum())})" for i in rare)
    return [
        "",
        "### Golden accuracy on the targets (GATE REPORT)",
        "",
        f"| variant | seed | golden acc | {header} | JP-EN (n={int(jp_en.sum())}) |",
        "|---|---|---|" + "---|" * (len(rare) + 1),
        *rows,
    ]


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None, help="results folder (default bench/results/ood)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--variant", choices=list(VARIANTS), required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--base-model", default=None, help="default: the packaged all-MiniLM-L6-v2")
    p.add_argument(
        "--max-steps", type=int, default=None, help="smoke runs only (default: recipe v2's budget)"
    )
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("evaluate")
    p.add_argument("--variant", choices=list(VARIANTS), required=True)
    p.add_argument("--seed", type=int, required=True)
    p = sub.add_parser("report")
    p.add_argument("--out", default=None)
    p.add_argument("--all-detectors", action="store_true")
    p = sub.add_parser("latency")
    p.add_argument("--variant", choices=list(VARIANTS), required=True)
    p.add_argument("--seed", type=int, required=True)
    p = sub.add_parser("gate-report")
    p.add_argument("--out", default=None)
    p.add_argument("--reference", default="base", help="the variant each candidate is paired with")
    args = parser.parse_args(argv)
    global RESULTS
    if args.results:
        RESULTS = Path(args.results)
    return {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "report": cmd_report,
        "latency": cmd_latency,
        "gate-report": cmd_gate_report,
    }[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
