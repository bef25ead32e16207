"""The Label Studio labelling interface: primary intent (or out of scope) and an optional secondary."""

from xml.sax.saxutils import quoteattr

from manga_intent.taxonomy import INTENTS

OUT_OF_SCOPE = "out_of_scope"


def label_config(intents=INTENTS) -> str:
    primary = "".join(f"<Choice value={quoteattr(i)}/>" for i in (*intents, OUT_OF_SCOPE))
    secondary = "".join(f"<Choice value={quoteattr(i)}/>" for i in intents)
    return (
        "<View>"
        '<Header value="What does the shopper want? (model guess pre-selected)"/>'
        '<Text name="text" value="$text"/>'
        '<Choices name="intent" toName="text" choice="single" showInLine="true" required="true">'
        f"{primary}</Choices>"
        '<Header value="Second intent, only for multi-intent messages"/>'
        f'<Choices name="secondary" toName="text" choice="single" showInLine="true">{secondary}</Choices>'
        "</View>"
    )


def choice_result(name: str, value: str) -> dict:
    """One Label Studio `choices` result item (used for pre-annotations and by scripted labelers)."""
    return {"from_name": name, "to_name": "text", "type": "choices", "value": {"choices": [value]}}


def read_choices(result: list[dict]) -> tuple[str | None, str | None]:
    """(primary, secondary) from an annotation's result list."""
    primary = secondary = None
    for item in result or []:
        choices = (item.get("value") or {}).get("choices") or []
        if item.get("from_name") == "intent" and choices:
            primary = choices[0]
        elif item.get("from_name") == "secondary" and choices:
            secondary = choices[0]
    return primary, secondary
