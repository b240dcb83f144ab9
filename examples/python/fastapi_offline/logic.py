"""The business logic both entry points share: what to do with a text
given the two models' scores."""


def decide(text: str, sentiment: float, toxicity: float) -> dict:
    if toxicity >= 0.5:
        action = "block"
    elif sentiment < 0:
        action = "review"
    else:
        action = "publish"
    return {"text": text, "sentiment": round(sentiment, 3), "toxicity": round(toxicity, 3), "action": action}
