"""From a backend's reply to records and failure records: parse, check, keep or reject with a reason.

One job: turn one reply (JSON text ``{"questions": [...]}``) for one clip or image set into
validated dataset records, and everything that cannot be one into a failure record (``schemas``
``failure``, stage ``synth``) naming the input, the question and why. Nothing is dropped
silently: each question of a reply ends as a record, a failure or a duplicate.

Checks, in order (``error_type`` of the failure):

* the reply: ``no_reply`` (the backend gave no text: its ``error_type`` and reason are kept in the
  message), ``unparsable`` (not a JSON object with a ``questions`` list; the text's start is
  kept), ``no_questions`` (an empty list);
* each question: ``invalid_item`` (a field missing or not text), ``over_limit`` (beyond
  ``generation.max_questions``), ``repeated_negatives`` (two wrong answers read the same),
  ``answer_in_negatives`` (the answer is also a wrong answer), ``too_few_negatives`` (fewer than
  ``generation.min_negatives``), ``answer_leaked`` (the answer's words stand in the question),
  ``unsupported_by_transcript`` (SubtitleQA, see ``transcript_support``), ``invalid_record``
  (the record breaks its schema; the field path is named);
* the same question twice for one input (after ``normalize_text``): the later one is a failure
  record with outcome ``duplicate`` pointing at the kept record.

"Reads the same" is ``normalize_text`` (case, spaces and punctuation) everywhere.

**The transcript-support check (SubtitleQA).** An answer is supported by the transcript when at
least ``generation.support_threshold`` (default all) of its *content words* occur in one cue or
in two consecutive cues. Content words are the normalized words minus a short list of function
words (articles, pronouns, auxiliaries, prepositions); each word is compared after stripping an
``-ing``, ``-ed`` or ``-s`` ending and then a final ``e`` (``enters`` matches ``entering``,
``squares`` matches ``square``; ``-ies`` becomes ``y``), and number words
up to twenty equal their digits (``three`` matches ``3``). An answer with no content word is not
supported (there is nothing to find). The check keeps answers a model made up, or took from
outside the subtitles, out of SubtitleQA, whose questions must need what is said.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from schemas.metrics import normalize_text
from schemas.records import RecordValidationError, validate

__all__ = ["STAGE", "Outcome", "make_records", "parse_reply", "transcript_support", "content_words",
           "answer_leaked", "record_key"]

STAGE = "synth"
_STOP = frozenset("""a an the this that these those it its is are was were be been being am do does did
of to in on at by for with from into onto over under up down out off and or but so as than then there here
he she they we you i me him her them us his their our your my what which who whom whose when where why how
will would can could shall should may might must has have had not no yes now just very also too""".split())
_NUMBERS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                            "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"
                                            .split())}
_SHORT = {"CapQA": "capqa", "SubtitleQA": "subqa", "SynMultiImageQA": "synmiqa"}
_TEXT_FIELDS = ("question", "answer", "category")


def _stem(word: str) -> str:
    word = _NUMBERS.get(word, word)
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def content_words(text: str) -> list[str]:
    """The stemmed content words of ``text`` (see the module docstring), in order."""
    return [_stem(w) for w in normalize_text(text).split() if w not in _STOP]


def transcript_support(answer: str, cues: list[Mapping[str, Any]]) -> tuple[float, list[str]]:
    """How much of an answer the transcript states (see the module docstring).

    Args:
        answer: the answer text.
        cues: the clip's cues (``{"text"}`` each), in time order.

    Returns:
        ``(share of content words found in the best window, the words missing there)``; ``(0.0, [])``
        for an answer without content words.
    """
    words = [(w, _stem(w)) for w in normalize_text(answer).split() if w not in _STOP]
    if not words:
        return 0.0, []
    texts = [c["text"] for c in cues]
    windows = texts + [f"{a} {b}" for a, b in zip(texts, texts[1:])]
    best, missing = 0.0, sorted({w for w, _ in words})
    for window in windows:
        have = set(content_words(window))
        gone = [w for w, stem in words if stem not in have]
        share = 1.0 - len(gone) / len(words)
        if share > best:
            best, missing = share, sorted(set(gone))
    return best, missing


def answer_leaked(question: str, answer: str) -> bool:
    """Whether the answer's words stand, in order, in the question (after ``normalize_text``).

    Answers made only of function words ("yes", "no") are never called leaked.
    """
    a, q = normalize_text(answer), normalize_text(question)
    return bool(content_words(answer)) and f" {a} " in f" {q} "


def record_key(input_id: str, dataset: str, question: str) -> str:
    """``{input id}-{dataset short name}-{8 hex of the normalized question}``: stable and unique per input."""
    digest = hashlib.sha256(normalize_text(question).encode("utf-8")).hexdigest()[:8]
    return f"{input_id}-{_SHORT[dataset]}-{digest}"


class ParseError(ValueError):
    """A reply that is not a question list (``error_type`` ``unparsable`` or ``no_questions``)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def parse_reply(text: str) -> list[Any]:
    """The questions of a reply: the ``questions`` list of a JSON object.

    A reply wrapped in a Markdown code fence is unwrapped first (models do that).

    Raises:
        ParseError: not JSON, not an object with a ``questions`` list, or an empty list.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ParseError("unparsable", f"the reply is not JSON ({exc.msg} at character {exc.pos}): "
                                       f"{text[:120]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise ParseError("unparsable", f"the reply is not an object with a 'questions' list: {text[:120]!r}")
    if not data["questions"]:
        raise ParseError("no_questions", "the reply has no questions")
    return data["questions"]


@dataclass
class Outcome:
    """What one reply gave."""

    records: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    """Failure records, outcome ``failed`` or ``duplicate``."""


def _failure(key: str, input_id: str, error_type: str, message: str, payload: Any,
             duplicate_of: Optional[str] = None) -> dict:
    return validate("failure", {
        "key": key, "input_id": input_id, "stage": STAGE, "error_type": error_type, "message": message,
        "input": json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str),
        "outcome": "duplicate" if duplicate_of else "failed", "duplicate_of": duplicate_of,
    }).model_dump()


def _check_item(item: Any, dataset: str, media: Mapping[str, Any], min_negatives: int,
                threshold: float) -> tuple[Optional[dict], Optional[tuple[str, str]]]:
    """(record fields, None) or (None, (error_type, message))."""
    multi = dataset == "SynMultiImageQA"
    need = _TEXT_FIELDS + (("explanation",) if multi else ())
    if not isinstance(item, dict) or any(not isinstance(item.get(k), str) or not item[k].strip() for k in need):
        return None, ("invalid_item", f"a question needs non-empty text fields {', '.join(need)}")
    q, a = item["question"].strip(), item["answer"].strip()
    fields = {"question": q, "answer": a, "category": item["category"].strip()}
    if multi:
        fields["explanation"] = item["explanation"].strip()
    else:
        negs = item.get("negatives")
        if not isinstance(negs, list) or any(not isinstance(n, str) or not n.strip() for n in negs):
            return None, ("invalid_item", "negatives must be a list of non-empty texts")
        negs = [n.strip() for n in negs]
        normed = [normalize_text(n) for n in negs]
        if len(set(normed)) != len(normed):
            return None, ("repeated_negatives", f"two wrong answers read the same: {negs}")
        if normalize_text(a) in normed:
            return None, ("answer_in_negatives", f"the answer {a!r} is also a wrong answer")
        if len(negs) < min_negatives:
            return None, ("too_few_negatives", f"{len(negs)} wrong answers, at least {min_negatives} needed")
        fields["negative_answers"] = negs
    if answer_leaked(q, a):
        return None, ("answer_leaked", f"the answer {a!r} stands in the question")
    if dataset == "SubtitleQA":
        share, missing = transcript_support(a, media.get("subtitles") or [])
        if share < threshold:
            why = "has no content word to find" if not content_words(a) else \
                f"words not in any cue (or two consecutive cues): {missing}"
            return None, ("unsupported_by_transcript", f"the answer {a!r} is not supported by the transcript "
                          f"({share:.2f} < {threshold:g}): {why}")
    return fields, None


def make_records(dataset: str, input_id: str, reply: Any, media: Mapping[str, Any], provenance: dict,
                 min_negatives: int = 3, max_questions: int = 8, support_threshold: float = 1.0) -> Outcome:
    """Records and failure records from one reply (see the module docstring).

    Args:
        dataset: ``CapQA``, ``SubtitleQA`` or ``SynMultiImageQA``.
        input_id: the clip id or image-set id.
        reply: a ``pipelines.synth.backends.Reply``.
        media: the record fields naming the media (``video_id``, ``clip_id``, ``clip_start``,
            ``clip_end``; ``subtitles`` for SubtitleQA; ``image_set_id``, ``image_ids``).
        provenance: the records' provenance (``schemas.provenance``, method ``generated``).
        min_negatives, max_questions, support_threshold: ``GenerationConfig`` settings.

    Returns:
        An :class:`Outcome`; records sorted by key.
    """
    out = Outcome()
    short = _SHORT[dataset]
    if reply.text is None:
        out.failures.append(_failure(f"{input_id}-{short}-reply", input_id, "no_reply",
                                     f"{input_id}: the backend gave no reply ({reply.error_type}): {reply.message}",
                                     {"input_id": input_id, "error_type": reply.error_type}))
        return out
    try:
        items = parse_reply(reply.text)
    except ParseError as exc:
        out.failures.append(_failure(f"{input_id}-{short}-reply", input_id, exc.error_type, f"{input_id}: {exc}",
                                     {"input_id": input_id, "reply": reply.text[:2000]}))
        return out
    kept: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{input_id} question {i}"
        fkey = f"{input_id}-{short}-q{i}"
        if i >= max_questions:
            out.failures.append(_failure(fkey, where, "over_limit", f"{where}: beyond the {max_questions} "
                                         "questions kept per input", item))
            continue
        fields, problem = _check_item(item, dataset, media, min_negatives, support_threshold)
        if problem is not None:
            out.failures.append(_failure(fkey, where, problem[0], f"{where}: {problem[1]}", item))
            continue
        norm = normalize_text(fields["question"])
        if norm in kept:
            out.failures.append(_failure(fkey, where, "duplicate_question", f"{where}: the same question as "
                                         f"record {kept[norm]}", item, duplicate_of=kept[norm]))
            continue
        rec = {"key": record_key(input_id, dataset, fields["question"]), **media, **fields, "provenance": provenance}
        try:
            out.records.append(validate(dataset, rec).model_dump())
        except RecordValidationError as exc:
            out.failures.append(_failure(fkey, where, "invalid_record", f"{where}: {exc}", item))
            continue
        kept[norm] = rec["key"]
    out.records.sort(key=lambda r: r["key"])
    return out
