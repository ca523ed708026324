"""Precision and recall of the default threshold, with the mock's embeddings, on a small labelled
set of paraphrases and near-misses.

A pair is predicted a hit when the cosine similarity reaches the default threshold and the guard
lets it through, exactly as a lookup decides. Precision matters most (a wrong hit is a wrong
answer served); recall is reported. The set keeps a pair no similarity threshold can tell apart
(the same words in another order: "is A faster than B"), which is why precision is not 1. These figures describe the mock's vectors, not a real
embedding model's: with one, measure on your own traffic before choosing a threshold.
"""

from __future__ import annotations

import numpy as np

from edge_ext.config.semantic import DEFAULT_THRESHOLD
from edge_ext.mock.vectors import embed
from edge_ext.semantic.guard import same_meaning_marks

PARAPHRASES = [
    ("What is the capital of France?", "Tell me the capital city of France."),
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("What's the capital of France?", "what is the capital of france"),
    ("How does a car engine work?", "Explain how an automobile engine works."),
    ("How do I bake bread?", "Can you tell me how to bake bread?"),
    ("Who wrote Hamlet?", "Who is the author of Hamlet?"),
    ("Who wrote Hamlet?", "Hamlet was written by whom?"),
    ("What is the largest ocean?", "Which ocean is the biggest?"),
    ("What does API mean?", "What is the meaning of API?"),
    ("Translate 'good morning' into Spanish", "Please translate 'good morning' into Spanish"),
    ("Summarise the plot of Macbeth in 3 sentences", "Summarize the plot of Macbeth in three sentences"),
    ("List five fruits", "Please list 5 fruits"),
    ("Is coffee bad for your health?", "Is coffee bad for health?"),
    ("When was Mozart born?", "When was Mozart's birth?"),
    ("Where is the Eiffel Tower located?", "Where is the Eiffel Tower?"),
    ("What is the price of a Tesla Model 3?", "How much does a Tesla Model 3 cost?"),
    ("How can I start learning Python?", "How do I begin learning Python?"),
    ("What is photosynthesis?", "Explain photosynthesis."),
    ("Describe the water cycle", "Explain the water cycle to me"),
    ("What are the symptoms of the flu?", "Tell me the symptoms of flu"),
    ("Why is the sky blue?", "Why is the sky blue? Please explain."),
    ("Recommend a good sci-fi movie", "Recommend a good sci-fi film"),
    ("How do I reset my password?", "How can I reset my password?"),
    ("What is 15% of 80?", "What's 15% of 80?"),
    ("Convert 10 miles to kilometres", "Please convert 10 miles to kilometres"),
    ("Give me a synonym for happy", "What is a synonym for happy?"),
    ("Define entropy", "What is the definition of entropy?"),
    ("What time zone is Tokyo in?", "Which time zone is Tokyo in?"),
    ("Write a haiku about autumn", "Could you write a haiku about autumn?"),
    ("How fast can a cheetah run?", "How quickly can a cheetah run?"),
]

DIFFERENT = [
    ("Is coffee bad for your health?", "Is coffee not bad for your health?"),
    ("Should I take the job offer?", "Should I not take the job offer?"),
    ("Can dogs eat grapes?", "Can't dogs eat grapes?"),
    ("Is it safe to drink tap water in Paris?", "Is it never safe to drink tap water in Paris?"),
    ("What is 2 + 2?", "What is 2 + 3?"),
    ("List five fruits", "List six fruits"),
    ("Convert 10 miles to kilometres", "Convert 100 miles to kilometres"),
    ("What happened in 1914?", "What happened in 1918?"),
    ("Summarise the plot of Macbeth in 3 sentences", "Summarise the plot of Macbeth in 5 sentences"),
    ("When was Mozart born?", "Where was Mozart born?"),
    ("When was Mozart born?", "When did Mozart die?"),
    ("What is the capital of France?", "What is the capital of Germany?"),
    ("What is the capital of France?", "What is the population of France?"),
    ("Who wrote Hamlet?", "Who wrote Macbeth?"),
    ("How do I bake bread?", "How do I bake a cake?"),
    ("What is the largest ocean?", "What is the smallest ocean?"),
    ("Translate 'good morning' into Spanish", "Translate 'good morning' into French"),
    ("How do I reset my password?", "How do I change my username?"),
    ("Why is the sky blue?", "Why is the sea blue?"),
    ("What are the symptoms of the flu?", "What are the treatments for the flu?"),
    ("Recommend a good sci-fi movie", "Recommend a good horror movie"),
    ("How fast can a cheetah run?", "How fast can a horse run?"),
    ("Write a haiku about autumn", "Write a haiku about spring"),
    ("What time zone is Tokyo in?", "What time is it in Tokyo?"),
    ("Define entropy", "Define enthalpy"),
    ("Is Python faster than Java?", "Is Java faster than Python?"),
]


def predicted_hit(a: str, b: str, threshold: float) -> bool:
    similarity = float(np.dot(embed(a), embed(b)))
    return similarity >= threshold and same_meaning_marks(a, b)


def scores(threshold: float) -> tuple[float, float, list, list]:
    missed = [p for p in PARAPHRASES if not predicted_hit(*p, threshold)]
    wrong = [p for p in DIFFERENT if predicted_hit(*p, threshold)]
    hits = len(PARAPHRASES) - len(missed)
    precision = hits / (hits + len(wrong)) if hits + len(wrong) else 1.0
    return precision, hits / len(PARAPHRASES), missed, wrong


def test_default_threshold_precision_and_recall_on_the_mock():
    precision, recall, missed, wrong = scores(DEFAULT_THRESHOLD)
    print(f"\nsemantic cache, default threshold {DEFAULT_THRESHOLD} on the mock's embeddings: "
          f"precision {precision:.2f}, recall {recall:.2f} ({len(PARAPHRASES)} paraphrases, {len(DIFFERENT)} near-misses)")
    for pair in missed:
        print("  missed paraphrase:", pair)
    for pair in wrong:
        print("  wrong hit:", pair)
    assert precision >= 0.95, f"pairs that mean something else were hits: {wrong}"
    assert recall >= 0.8, f"recall {recall:.2f}; missed: {missed}"


def test_the_guard_is_what_refuses_negations_and_numbers():
    """Without the guard, the mock's vectors (like real ones) put most of these above the threshold."""
    marked = DIFFERENT[:9]
    close = [p for p in marked if float(np.dot(embed(p[0]), embed(p[1]))) >= DEFAULT_THRESHOLD]
    assert len(close) >= len(marked) // 2, close
    assert not any(predicted_hit(*p, DEFAULT_THRESHOLD) for p in marked)
