"""Turning several annotators' answers into one training label, and flagging disagreement."""

from collections import Counter, defaultdict


def majority_vote(annotations: list[dict]) -> dict:
    """`annotations`: dicts with `intent`, `secondary`, `annotator`. Ties have no label and are flagged."""
    if not annotations:
        raise ValueError("no annotations to vote on")
    votes = Counter(a["intent"] for a in annotations)
    (winner, top), *rest = votes.most_common() + [(None, 0)]
    tie = bool(rest) and rest[0][1] == top
    secondaries = Counter(a["secondary"] for a in annotations if a["intent"] == winner and a.get("secondary"))
    return {
        "label": None if tie else winner,
        "secondary": secondaries.most_common(1)[0][0] if secondaries and not tie else None,
        "votes": dict(votes),
        "annotators": sorted({str(a["annotator"]) for a in annotations}),
        "agreement": top / len(annotations),
        "disagreement": len(votes) > 1,
        "tie": tie,
    }


def aggregate_annotations(annotations: list[dict], out_of_scope: str) -> tuple[list[dict], list[dict]]:
    """One row per task: (agreed training labels, rows for human review — ties and out-of-scope answers)."""
    by_task: dict[int, list[dict]] = defaultdict(list)
    for annotation in annotations:
        by_task[annotation["task_id"]].append(annotation)
    agreed, review = [], []
    for task_id, items in sorted(by_task.items()):
        vote = majority_vote(items)
        row = {
            "text": items[0]["text"],
            "task_id": task_id,
            "message_key": items[0]["message_key"],
            "provenance": "human",
            **{k: vote[k] for k in ("votes", "annotators", "agreement", "disagreement")},
        }
        if vote["label"] is None or vote["label"] == out_of_scope:
            review.append({**row, "reason": "tie" if vote["tie"] else "out_of_scope"})
        else:
            agreed.append({**row, "label": vote["label"], "secondary": vote["secondary"]})
    return agreed, review
