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


def one_vote_per_annotator(annotations: list[dict]) -> list[dict]:
    """An annotator who answered a message twice (or on a duplicate task) counts once: their latest answer."""
    latest: dict[tuple, tuple[int, dict]] = {}
    ordered = sorted(enumerate(annotations), key=lambda ia: (ia[1].get("annotation_id", 0), ia[0]))
    for position, a in ordered:
        latest[(a.get("message_key") or a["task_id"], str(a["annotator"]))] = (position, a)
    return [a for _, a in sorted(latest.values(), key=lambda pa: pa[0])]


def aggregate_annotations(annotations: list[dict], out_of_scope: str) -> tuple[list[dict], list[dict]]:
    """One row per message (its normalised key; the task id when a task has none): (agreed training
    labels, rows for human review — ties and out-of-scope answers). Votes count annotators, not
    annotations."""
    by_message: dict[object, list[dict]] = defaultdict(list)
    for annotation in one_vote_per_annotator(annotations):
        by_message[annotation.get("message_key") or annotation["task_id"]].append(annotation)
    agreed, review = [], []
    for _, items in sorted(by_message.items(), key=lambda kv: min(a["task_id"] for a in kv[1])):
        task_id = min(a["task_id"] for a in items)
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
