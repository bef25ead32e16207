"""Rendering for asset metadata: Markdown tables the Dagster UI shows (and images inlined as Markdown)."""

import dagster as dg


def markdown_table(rows: list[dict], columns: list[str] | None = None, floats: int = 4) -> str:
    if not rows:
        return "_empty_"
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))  # every row's keys, in order

    def fmt(value):
        if isinstance(value, float):
            return f"{value:.{floats}f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def per_intent_table(report: dict) -> str:
    rows = [{"intent": label, **values} for label, values in report["per_intent"].items()]
    return markdown_table(rows, ["intent", "precision", "recall", "f1", "support"], floats=3)


def md(text: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(text)
