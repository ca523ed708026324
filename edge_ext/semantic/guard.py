"""Near-duplicates that mean something else: a negation or a number changes the answer.

Embeddings put "is X safe" and "is X not safe", or "2 + 2" and "2 + 3", close together, often
above any useful threshold. So a candidate is only a hit when the two prompts carry the same
negations and the same numbers (as multisets: order and wording around them may differ).
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

# Counted by kind, not by word: "not" and "never" both flip an answer; "isn't" and "is not" are
# the same negation.
_NEGATIONS = frozenset({
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without",
    "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont",
    "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt", "aint",
    "except", "excluding", "unless",
})
_NUMBER_WORDS = {
    w: str(i) for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split())
}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
                      "ninety": "90", "hundred": "100", "thousand": "1000", "million": "1000000",
                      "billion": "1000000000", "half": "0.5", "twice": "2", "double": "2", "triple": "3"})


def _marks(text: str) -> tuple[int, Counter]:
    negations, numbers = 0, Counter()
    for word in _WORD.findall(text.lower()):
        bare = word.replace("'", "").replace("’", "")
        if bare in _NEGATIONS or word.endswith(("n't", "n’t")):
            negations += 1
        elif bare in _NUMBER_WORDS:
            numbers[_NUMBER_WORDS[bare]] += 1
    for number in _NUMBER.findall(text):
        numbers[number.replace(",", "")] += 1
    return negations, numbers


def same_meaning_marks(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` have as many negations and the same numbers."""
    return _marks(a) == _marks(b)
