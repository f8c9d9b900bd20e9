"""Template question programs over a clip's facts: every answer computed from the data we hold.

One job: the ``template`` backend's questions for CapQA and SubtitleQA, each a program with a
category, run over the facts of :mod:`pipelines.synth.facts` (SynMultiImageQA's programs are in
:mod:`pipelines.synth.cosyn`). A program asks only where its answer is unique and it has at
least three wrong answers it knows to be wrong; it never guesses. Random choices (which wrong
answers, which cue) come from ``random.Random`` seeded by (seed, clip, program), so the same
facts and seed give the same questions.

CapQA programs:

* ``counting`` (category ``counting``): "How many red circles appear in the video?" from a
  VideoPoint count; wrong answers are nearby other numbers.
* ``first_seen`` / ``last_seen`` (``temporal``): when a tracked expression is first / last visible
  on the clip's sample times, asked only when that is not the clip's first / last sample time
  (it comes into view or leaves); wrong answers are other sample times.
* ``seen_first`` / ``seen_last`` (``temporal``): which tracked expression comes into view first /
  last (a unique earliest / latest first-visible time); wrong answers are the other tracked
  expressions and labels pointed with a count of 0 (known not to appear).
* ``reappears`` (``temporal``): which single-object expression is visible, then not, then
  visible again on the sample times.

SubtitleQA programs (wrong answers are the clip's other cues):

* ``said_on_entry`` (``subtitle_event``): what is said when a tracked expression comes into view
  (the cue spanning its first-visible time);
* ``said_at`` (``subtitle_event``): what is said at a sample time inside exactly one cue;
* ``said_after`` (``subtitle_sequence``): what is said right after a quoted cue.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Optional

from schemas.metrics import normalize_text

__all__ = ["run", "capqa_items", "subtitleqa_items", "fmt_time", "plural", "the", "CAPQA_PROGRAMS",
           "SUBTITLE_PROGRAMS"]

_EPS = 1e-6


def fmt_time(t: float) -> str:
    """``1.5 s``, ``2 s``, ``3.97 s``: a clip time as options print it (0.01 s resolution)."""
    v = round(float(t), 2)
    return f"{int(v)} s" if v.is_integer() else f"{v:g} s"


def plural(label: str) -> str:
    """English plural of a label's last word: circle -> circles, box -> boxes, butterfly -> butterflies."""
    head, _, last = label.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def the(expression: str, capital: bool = False) -> str:
    """``red circle`` -> ``the red circle`` (kept as is when it starts with a determiner)."""
    words = expression.strip()
    if words.lower().split(" ", 1)[0] not in ("the", "a", "an", "this", "that", "every", "each"):
        words = f"the {words}"
    return words[:1].upper() + words[1:] if capital else words


def _rng(seed: int, facts: dict, program: str) -> random.Random:
    return random.Random(f"synth:{seed}:{facts['clip_id']}:{program}")


def _item(question: str, answer: str, negatives: Iterable[str], category: str, program: str) -> dict[str, Any]:
    return {"question": question, "answer": answer, "negatives": list(negatives), "category": category,
            "program": program}


def _distinct(candidates: Iterable[str], exclude: Iterable[str]) -> list[str]:
    """Candidates whose normalized text differs from each other and from ``exclude``, in order."""
    seen = {normalize_text(e) for e in exclude}
    out = []
    for c in candidates:
        n = normalize_text(c)
        if n and n not in seen:
            seen.add(n)
            out.append(c)
    return out


def _pick(rng: random.Random, pool: list[str], k: int = 3) -> Optional[list[str]]:
    return sorted(rng.sample(pool, k)) if len(pool) >= k else None


# ---------------------------------------------------------------- CapQA

def _counting(facts: dict, rng: random.Random) -> list[dict]:
    out = []
    for c in facts["counts"]:
        n = c["count"]
        near = [str(k) for k in (n - 2, n - 1, n + 1, n + 2, n + 3) if k >= 0 and k != n]
        negatives = _pick(rng, near)
        if negatives:
            out.append(_item(f"How many {plural(c['label'])} appear in the video?", str(n), negatives,
                             "counting", "counting"))
    return out


def _seen_at(facts: dict, rng: random.Random, which: str) -> list[dict]:
    times = facts["timestamps"]
    out = []
    for tr in facts["tracks"]:
        t = tr[which]
        edge = times[0] if which == "first" else times[-1]
        if t is None or abs(t - edge) <= _EPS:
            continue
        answer = f"At {fmt_time(t)}"
        pool = _distinct((f"At {fmt_time(s)}" for s in times if abs(s - t) > _EPS), [answer])
        negatives = _pick(rng, pool)
        if negatives:
            word = "first" if which == "first" else "last"
            out.append(_item(f"When is {the(tr['expression'])} {word} visible in the video?", answer, negatives,
                             "temporal", f"{word}_seen"))
    return out


def _absent(facts: dict) -> list[str]:
    """Labels pointed with a count of 0 and not tracked: known not to appear."""
    tracked = {normalize_text(t["expression"]) for t in facts["tracks"]}
    return [c["label"] for c in facts["counts"] if c["count"] == 0 and normalize_text(c["label"]) not in tracked]


def _seen_order(facts: dict, rng: random.Random, which: str) -> list[dict]:
    seen = [(t["first"], t["expression"]) for t in facts["tracks"] if t["first"] is not None]
    if len(seen) < 2:
        return []
    seen.sort(reverse=which == "last")
    best, runner_up = seen[0][0], seen[1][0]
    if abs(best - runner_up) <= _EPS:
        return []  # a tie: no unique answer
    answer = the(seen[0][1], capital=True)
    others = [the(e, capital=True) for _, e in seen[1:]] + [the(a, capital=True) for a in _absent(facts)]
    negatives = _pick(rng, _distinct(others, [answer]))
    if not negatives:
        return []
    q = "comes into view first" if which == "first" else "is the last to come into view"
    return [_item(f"Which of these {q} in the video?", answer, negatives, "temporal", f"seen_{which}")]


def _has_gap(times: list[float], visible: list[float]) -> bool:
    index = {round(t, 6): i for i, t in enumerate(times)}
    at = sorted(index[round(t, 6)] for t in visible if round(t, 6) in index)
    return any(b - a > 1 for a, b in zip(at, at[1:]))


def _reappears(facts: dict, rng: random.Random) -> list[dict]:
    times = facts["timestamps"]
    gaps = [t["expression"] for t in facts["tracks"]
            if len(t["objects"]) == 1 and _has_gap(times, t["objects"][0]["visible_times"])]
    if len(gaps) != 1:
        return []
    steady = [t["expression"] for t in facts["tracks"]
              if t["first"] is not None and not any(_has_gap(times, o["visible_times"]) for o in t["objects"])]
    answer = the(gaps[0], capital=True)
    negatives = _pick(rng, _distinct([the(e, capital=True) for e in steady + _absent(facts)], [answer]))
    if not negatives:
        return []
    return [_item("Which of these disappears from view and later comes back?", answer, negatives, "temporal",
                  "reappears")]


CAPQA_PROGRAMS: dict[str, Callable[[dict, random.Random], list[dict]]] = {
    "counting": _counting,
    "first_seen": lambda f, r: _seen_at(f, r, "first"),
    "last_seen": lambda f, r: _seen_at(f, r, "last"),
    "seen_first": lambda f, r: _seen_order(f, r, "first"),
    "seen_last": lambda f, r: _seen_order(f, r, "last"),
    "reappears": _reappears,
}


# ---------------------------------------------------------------- SubtitleQA

def _cues_at(cues: list[dict], t: float) -> list[dict]:
    return [c for c in cues if c["start"] - _EPS <= t <= c["end"] + _EPS]


def _said_on_entry(facts: dict, rng: random.Random) -> list[dict]:
    cues, times, out = facts["subtitles"], facts["timestamps"], []
    for tr in facts["tracks"]:
        t = tr["first"]
        if t is None or abs(t - times[0]) <= _EPS:
            continue
        spanning = _cues_at(cues, t)
        if len(spanning) != 1:
            continue
        answer = spanning[0]["text"]
        negatives = _pick(rng, _distinct((c["text"] for c in cues), [answer]))
        if negatives:
            out.append(_item(f"What is said when {the(tr['expression'])} comes into view?", answer, negatives,
                             "subtitle_event", "said_on_entry"))
    return out


def _said_at(facts: dict, rng: random.Random) -> list[dict]:
    cues = facts["subtitles"]
    inside = [t for t in facts["timestamps"] if len(_cues_at(cues, t)) == 1]
    if not inside:
        return []
    t = rng.choice(inside)
    answer = _cues_at(cues, t)[0]["text"]
    negatives = _pick(rng, _distinct((c["text"] for c in cues), [answer]))
    return [_item(f"What is said at {fmt_time(t)}?", answer, negatives, "subtitle_event", "said_at")] if negatives else []


def _said_after(facts: dict, rng: random.Random) -> list[dict]:
    cues, out = facts["subtitles"], []
    pairs = [(a, b) for a, b in zip(cues, cues[1:]) if normalize_text(a["text"]) != normalize_text(b["text"])]
    for a, b in sorted(rng.sample(pairs, min(2, len(pairs))), key=lambda p: p[0]["start"]):
        negatives = _pick(rng, _distinct((c["text"] for c in cues), [b["text"], a["text"]]))
        if negatives:
            out.append(_item(f"What is said right after \"{a['text']}\"?", b["text"], negatives,
                             "subtitle_sequence", "said_after"))
    return out


SUBTITLE_PROGRAMS: dict[str, Callable[[dict, random.Random], list[dict]]] = {
    "said_on_entry": _said_on_entry,
    "said_at": _said_at,
    "said_after": _said_after,
}


def _interleave(groups: list[list[dict]]) -> list[dict]:
    """One item of each program in turn, so a limit keeps every kind of question."""
    out, i = [], 0
    while any(i < len(g) for g in groups):
        out += [g[i] for g in groups if i < len(g)]
        i += 1
    return out


def capqa_items(facts: dict, seed: int = 0) -> list[dict]:
    """Every CapQA program's questions for one clip (``{"question", "answer", "negatives",
    "category", "program"}`` each), interleaved by program."""
    return _interleave([p(facts, _rng(seed, facts, name)) for name, p in CAPQA_PROGRAMS.items()])


def subtitleqa_items(facts: dict, seed: int = 0) -> list[dict]:
    """Every SubtitleQA program's questions for one clip, interleaved by program."""
    if not facts["subtitles"]:
        return []
    return _interleave([p(facts, _rng(seed, facts, name)) for name, p in SUBTITLE_PROGRAMS.items()])


def run(task: str, facts: dict, seed: int = 0) -> list[dict]:
    """The template questions of one request.

    Raises:
        ValueError: an unknown task.
    """
    if task == "capqa":
        return capqa_items(facts, seed)
    if task == "subtitleqa":
        return subtitleqa_items(facts, seed)
    if task == "synmultiimageqa":
        from pipelines.synth.cosyn import set_questions

        return set_questions(facts, seed)
    raise ValueError(f"unknown synth task {task!r}")
