"""Shadow mode's parts: the window judgement on constructed rows, and the scorer that never blocks serving."""

import threading
import time
from dataclasses import dataclass

from manga_intent.data import normalized_key
from manga_intent.shadow_compare import PROMOTE, REJECT, WAIT, ShadowThresholds, judge_shadow
from serving.shadow import ShadowScorer, SqliteShadowLog


def rows(n, agree=1.0, champion_ood=0.0, challenger_ood=0.0, latency=5.0):
    out = []
    for i in range(n):
        same = i < agree * n
        out.append(
            {
                "text": f"message {i}",
                "champion_intent": "faq",
                "challenger_intent": "faq" if same else "promotion",
                "champion_confidence": 0.9,
                "challenger_confidence": 0.88,
                "champion_is_ood": i < champion_ood * n,
                "challenger_is_ood": i < challenger_ood * n,
                "champion_latency_ms": 4.0,
                "challenger_latency_ms": latency,
                "over_budget": False,
            }
        )
    return out


T = ShadowThresholds(window_messages=100, window_hours=1.0, min_labelled=20)


def test_no_decision_before_the_window_is_complete():
    assert judge_shadow(rows(99), {}, T, hours=5).decision == WAIT  # too few messages
    assert judge_shadow(rows(500), {}, T, hours=0.5).decision == WAIT  # too early
    assert judge_shadow(rows(100), {}, T, hours=1.0).decision == PROMOTE


def test_each_row_can_reject_the_challenger():
    cases = {
        "agreement with champion": rows(200, agree=0.7),
        "OOD rate, challenger − champion": rows(200, challenger_ood=0.2),
        "challenger P95 latency (shadow)": rows(200, latency=40.0),
    }
    for check, window in cases.items():
        verdict = judge_shadow(window, {}, T, hours=2)
        assert verdict.decision == REJECT and verdict.reasons[0].startswith(check), check


def test_labelled_accuracy_is_paired_and_ignores_messages_either_model_trained_on():
    window = rows(200, agree=0.8)  # the challenger says "promotion" on the last 40
    labels = {normalized_key(r["text"]): "promotion" for r in window[160:]}  # ... and it is right there
    labels |= {normalized_key(r["text"]): "faq" for r in window[:40]}
    verdict = judge_shadow(window, labels, T, hours=2)
    row = next(r for r in verdict.rows if r.check.startswith("accuracy on labelled"))
    assert verdict.labelled == 80 and row.value == 0.5 and row.verdict == "pass"
    trained_on = frozenset(normalized_key(r["text"]) for r in window[:75])
    fewer = judge_shadow(window, labels, T, hours=2, exclude_keys=trained_on)
    assert fewer.labelled == 40
    assert judge_shadow(window, {}, T, hours=2).rows[-1].verdict == "n/a"  # no labels: not judged


@dataclass
class SlowPrediction:
    intent: str = "faq"
    confidence: float = 0.5
    is_ood: bool = False


class SlowChallenger:
    def __init__(self, seconds):
        self.seconds, self.release = seconds, threading.Event()

    def classify(self, texts):
        self.release.wait(self.seconds)
        time.sleep(0.02)  # over the 10 ms budget even once released
        return [SlowPrediction() for _ in texts]


def served(i):
    return {
        "ts": float(i),
        "request_id": f"r{i}",
        "text": f"t{i}",
        "channel": "web",
        "model_version": "1",
        "intent": "faq",
        "confidence": 0.9,
        "is_ood": False,
        "latency_ms": 3.0,
    }


def test_the_scorer_never_blocks_the_caller_and_counts_what_it_drops(tmp_path):
    log = SqliteShadowLog(tmp_path / "log.sqlite")
    scorer = ShadowScorer(log, budget_ms=10, max_queue=2)
    challenger = SlowChallenger(seconds=30)
    started = time.perf_counter()
    accepted = [scorer.submit("2", challenger, [served(i)]) for i in range(10)]
    assert time.perf_counter() - started < 1.0  # ten submissions while the challenger is stuck: no waiting
    assert accepted.count(True) <= 3 and scorer.stats()["dropped"] == accepted.count(False)
    challenger.release.set()
    assert scorer.drain(timeout=30)
    logged = log.read("2")
    assert len(logged) == accepted.count(True) and all(r["over_budget"] for r in logged)
    assert logged[0]["champion_version"] == "1" and logged[0]["challenger_intent"] == "faq"
    scorer.stop()
