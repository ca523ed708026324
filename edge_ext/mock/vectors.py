"""Deterministic text vectors for the mock embeddings API: no model, no download, same answer on
every machine.

A bag of normalized words hashed into ``dims`` signed buckets. Normalizing is what puts
paraphrases together: case, punctuation, contractions, filler words ("please", "tell me",
"the"), a small synonym table, spelled-out numbers and crude stemming are folded away. Word order
is not (a bag of words): "is A faster than B" and "is B faster than A" are the same vector, as
they are nearly so for real embedding models. Question words weigh half: "what"
and "which" are close, "when" and "where" are not the same question.

Negations and numbers also weigh half, as in real embedding models, which place "is X safe" and
"is X not safe" close together: a negated or renumbered prompt usually stays above the similarity
threshold, and it is the semantic cache's guard (edge_ext.semantic.guard) that must refuse it.
"""

from __future__ import annotations

import hashlib
import math
import re

DEFAULT_DIMS = 384

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)?")
_CONTRACTIONS = {"n't": " not", "'s": "", "'re": "", "'m": "", "'ll": " will", "'ve": " have", "'d": " would"}
_FILLER = frozenset("""
a an the is are was were be been being am do does did of to in on at for from by with about into as it its this
that these those there here me my i you your we our us please tell give show explain describe know let can could
would will should may might kindly just some any really actually also so and or but if then than very quite
hey hi hello thanks thank want wanted like need i'd i'm question ask asking wonder wondering curious say
""".split())
_HALF = frozenset({"what", "which", "who", "whom", "whose", "when", "where", "why", "how", "not"})
_SYNONYMS = {
    "which": "what", "whom": "who", "whose": "who",
    "no": "not", "never": "not", "cannot": "not", "without": "not", "none": "not", "nor": "not", "neither": "not",
    "city": "", "nation": "country", "biggest": "largest", "big": "large", "huge": "large", "greatest": "largest",
    "smallest": "tiniest", "small": "tiny", "little": "tiny", "quick": "fast", "quickly": "fast", "rapid": "fast",
    "automobile": "car", "vehicle": "car", "purchase": "buy", "acquire": "buy", "cost": "price", "costs": "price",
    "begin": "start", "commence": "start", "finish": "end", "complete": "end", "sick": "ill", "unwell": "ill",
    "physician": "doctor", "medic": "doctor", "film": "movie", "picture": "movie", "author": "write", "writer": "write",
    "wrote": "write", "written": "write", "penned": "write", "create": "make", "build": "make", "construct": "make",
    "meaning": "mean", "definition": "mean", "define": "mean", "means": "mean", "stand": "mean",
    "located": "where", "location": "where", "place": "where", "situated": "where",
    "born": "birth", "birthday": "birth", "died": "death", "die": "death",
    "work": "function", "works": "function", "operate": "function", "operates": "function",
    "recipe": "cook", "prepare": "cook", "steps": "how", "way": "how", "ways": "how",
}
# Spelled-out numbers are the same number.
_SYNONYMS.update({w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())})


def _words(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    for short, long in _CONTRACTIONS.items():
        text = text.replace(short, long)
    return _TOKEN.findall(text)


def _stem(word: str) -> str:
    if word[0].isdigit() or len(word) <= 4:
        return word
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def features(text: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for word in _words(text):
        word = _SYNONYMS.get(word, word)
        if not word or word in _FILLER:
            continue
        word = _stem(word)
        weight = 0.5 if word in _HALF or word[0].isdigit() else 1.0
        weights[word] = weights.get(word, 0.0) + weight
    return weights


def _bucket(feature: str, dims: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dims, 1.0 if value >> 63 else -1.0


def embed(text: str, dims: int = DEFAULT_DIMS) -> list[float]:
    """A unit vector; text with no content word gets a fixed vector of its own."""
    vector = [0.0] * dims
    for feature, weight in (features(text) or {"\0empty": 1.0}).items():
        index, sign = _bucket(feature, dims)
        vector[index] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
