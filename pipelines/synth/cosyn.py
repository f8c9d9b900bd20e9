"""SynMultiImageQA the CoSyn way: generate data, draw it, group 2-5 images, ask questions computed from it.

One job: for one seed, make an image set's *data* (a small table per image), the render item
that draws each table (:mod:`pipelines.render`, the project's one renderer: bar, line and pie
charts, tables, documents), the facts a backend reads, and (``set_questions``) the template
questions whose answers are computed from that data, each with a short explanation that reads
the values and does the arithmetic. Nothing is looked up in a picture: the picture is drawn from
the data, so the data is the image's exact ground truth.

Kinds of sets (``SET_KINDS``):

* ``series``: one topic (quarterly revenue, exam scores, energy use...), one entity per image
  (a branch, a student, a building) with a value per category, each drawn as a bar, line (ordered
  categories only) or pie chart, a table or a document. Questions: the difference for a category
  between two images, the highest total, the sum and the mean of a category across images, the
  entity highest in a category, how many images exceed a threshold, whether two images peak in
  the same category.
* ``orders``: image 1 a price list (a table), images 2.. orders (documents with a quantity per
  item). Questions: the cost of an order at those prices, the most expensive order, the total
  quantity of one item over all orders.

Facts (what every backend reads; JSON): ``{"set_id", "kind", "topic", "images": [{"number",
"form", "item" (render data, ``pipelines.render.to_dict``), "table": {"entity", "unit",
"values": {category: number}}}]}``.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Any, Optional

from pipelines.render import BarChart, Document, LineChart, PieChart, Series, Table, format_value, from_dict, to_dict

__all__ = ["SET_KINDS", "make_set", "set_questions", "image_category", "money", "render_items"]

SET_KINDS = ("series", "series", "series", "orders")
"""Drawn by the seed; series sets three times as often as order sets."""
# title, unit, category noun, categories, ordered?, entity noun, entities, value range, decimals
_TOPICS = (
    ("Quarterly revenue", "Revenue (k$)", "quarter", ("Q1", "Q2", "Q3", "Q4"), True, "branch",
     ("Oslo branch", "Lima branch", "Pune branch", "Graz branch", "Kobe branch"), (20, 180), 0),
    ("Exam scores", "Score", "subject", ("Math", "Physics", "History", "Art", "Music"), False, "student",
     ("Ana", "Ben", "Chloe", "Dev", "Emi"), (40, 100), 0),
    ("Energy use", "kWh", "month", ("Jan", "Feb", "Mar", "Apr", "May"), True, "building",
     ("Library", "Gym", "Lab", "Office", "Depot"), (100, 900), 0),
    ("Book sales", "Copies", "genre", ("Mystery", "Travel", "Poetry", "Science", "Cooking"), False, "shop",
     ("Corner Books", "Page One", "The Attic", "Readers Hall", "Blue Shelf"), (5, 80), 0),
    ("Rainfall", "Rain (mm)", "week", ("Week 1", "Week 2", "Week 3", "Week 4"), True, "town",
     ("Bergen", "Galway", "Hilo", "Cairns", "Sitka"), (2, 60), 1),
)
_GOODS = (("Apples", 1.2), ("Bread", 2.5), ("Cheese", 4.75), ("Coffee", 6.4), ("Eggs", 3.1), ("Milk", 1.15),
          ("Rice", 2.05), ("Tea", 3.6))
_COLORS = ("blue", "green", "orange", "purple", "red")


def money(value: float) -> str:
    """``$4.80``: an amount of money as answers print it."""
    return f"${value:,.2f}"


def _form_item(form: str, title: str, unit: str, cat_noun: str, entity: str, values: dict[str, float],
               color: str, size: tuple[int, int]) -> Any:
    cats, nums = tuple(values), tuple(values.values())
    w, h = size
    if form == "bar":
        return BarChart(f"{title}: {entity}", cats, nums, y_label=unit, color=color, width=w, height=h)
    if form == "line":
        return LineChart(f"{title}: {entity}", cats, (Series(entity, nums, color),), y_label=unit, width=w, height=h)
    if form == "pie":
        return PieChart(f"{title}: {entity}", cats, nums, width=w, height=h)
    if form == "table":
        return Table(f"{title}: {entity}", (cat_noun.capitalize(), unit),
                     tuple((c, format_value(v)) for c, v in values.items()), width=w, height=h)
    return Document(f"{title} report", (f"{unit} by {cat_noun} for {entity}.",),
                    tuple((c, format_value(v)) for c, v in values.items()), width=w, height=h)


def _series(rng: random.Random, set_id: str, n: int, size: tuple[int, int]) -> dict[str, Any]:
    title, unit, cat_noun, categories, ordered, entity_noun, entities, (lo, hi), decimals = rng.choice(_TOPICS)
    k = rng.randint(3, len(categories))
    cats = categories[:k] if ordered else tuple(sorted(rng.sample(categories, k), key=categories.index))
    forms = ("bar", "pie", "table", "document") + (("line",) if ordered else ())
    images = []
    for number, entity in enumerate(rng.sample(entities, n), start=1):
        values = {c: round(rng.uniform(lo, hi), decimals) if decimals else rng.randint(lo, hi) for c in cats}
        form = rng.choice(forms)
        item = _form_item(form, title, unit, cat_noun, entity, values, rng.choice(_COLORS), size)
        images.append({"number": number, "form": form, "item": to_dict(item),
                       "table": {"entity": entity, "unit": unit, "values": values}})
    return {"set_id": set_id, "kind": "series", "topic": title, "category_noun": cat_noun,
            "entity_noun": entity_noun, "images": images}


def _orders(rng: random.Random, set_id: str, n: int, size: tuple[int, int]) -> dict[str, Any]:
    goods = sorted(rng.sample(_GOODS, rng.randint(4, 6)))
    prices = {g: p for g, p in goods}
    w, h = size
    price_table = Table("Price list", ("Item", "Price"), tuple((g, money(p)) for g, p in goods), width=w, height=h)
    images = [{"number": 1, "form": "table", "item": to_dict(price_table),
               "table": {"entity": "Price list", "unit": "$", "values": prices}}]
    for number in range(2, n + 1):
        lines = sorted(rng.sample([g for g, _ in goods], rng.randint(2, min(4, len(goods)))))
        qty = {g: rng.randint(1, 6) for g in lines}
        doc = Document(f"Order {100 + number * 7 + rng.randint(0, 6)}", ("Items and quantities:",),
                       tuple((g, str(q)) for g, q in qty.items()), width=w, height=h)
        images.append({"number": number, "form": "document", "item": to_dict(doc),
                       "table": {"entity": doc.title, "unit": "items", "values": qty}})
    return {"set_id": set_id, "kind": "orders", "topic": "Orders and prices", "category_noun": "item",
            "entity_noun": "order", "images": images}


def make_set(set_id: str, seed: int, n_images: tuple[int, int] = (2, 5), size: tuple[int, int] = (448, 336)) -> dict:
    """The facts of one image set (module docstring); ``from_dict(image["item"])`` draws each image.

    Args:
        set_id: the set's key.
        seed: every random choice comes from it.
        n_images: fewest and most images (2-5).
        size: width and height of every image, pixels.
    """
    rng = random.Random(f"cosyn:{seed}")
    kind = rng.choice(SET_KINDS)
    n = rng.randint(max(2, n_images[0]), n_images[1])
    return (_series if kind == "series" else _orders)(rng, set_id, n, size)


def image_category(facts: dict) -> str:
    """SynMultiImageQA ``category``: ``chart``, ``table`` or ``doc``, whichever most images are."""
    kinds = Counter({"bar": "chart", "line": "chart", "pie": "chart", "table": "table",
                     "document": "doc"}[img["form"]] for img in facts["images"])
    return sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


# ---------------------------------------------------------------- questions

def _qa(question: str, explanation: str, answer: str, category: str, program: str) -> dict[str, str]:
    return {"question": question, "explanation": explanation, "answer": answer, "category": category,
            "program": program}


def _unique_best(values: list[float], pick=max) -> Optional[int]:
    best = pick(values)
    return values.index(best) if values.count(best) == 1 else None


def _fmt(values: dict[int, float]) -> str:
    return ", ".join(f"Image {i} shows {format_value(v)}" for i, v in values.items())


def _series_questions(facts: dict, rng: random.Random, cat: str) -> list[dict]:
    imgs, noun = facts["images"], facts["category_noun"]
    cats = list(imgs[0]["table"]["values"])
    val = {img["number"]: img["table"]["values"] for img in imgs}
    out = []
    a, b = sorted(rng.sample(list(val), 2))
    c = rng.choice(cats)
    diff = round(abs(val[a][c] - val[b][c]), 2)
    out.append(_qa(f"What is the difference between the {c} values in Image {a} and Image {b}?",
                   f"Image {a} shows {format_value(val[a][c])} and Image {b} shows {format_value(val[b][c])} for {c}; "
                   f"the difference is {format_value(diff)}.", format_value(diff), cat, "difference"))
    totals = [round(sum(v.values()), 2) for v in val.values()]
    best = _unique_best(totals)
    if best is not None:
        out.append(_qa(f"Which image has the highest total over all {noun}s?",
                       "Totals: " + ", ".join(f"Image {i + 1} {format_value(t)}" for i, t in enumerate(totals))
                       + f"; Image {best + 1} is highest.", f"Image {best + 1}", cat, "highest_total"))
    c = rng.choice(cats)
    col = {i: v[c] for i, v in val.items()}
    total = round(sum(col.values()), 2)
    out.append(_qa(f"What is the combined {c} value across all the images?",
                   f"{_fmt(col)} for {c}; together {format_value(total)}.", format_value(total), cat, "sum"))
    c = rng.choice(cats)
    col = {i: v[c] for i, v in val.items()}
    mean = round(sum(col.values()) / len(col), 2)
    out.append(_qa(f"What is the average {c} value across the images, to two decimals?",
                   f"{_fmt(col)} for {c}; their mean is {format_value(round(sum(col.values()), 2))} / {len(col)} = "
                   f"{format_value(mean)}.", format_value(mean), cat, "mean"))
    c = rng.choice(cats)
    col = [val[i][c] for i in sorted(val)]
    best = _unique_best(col)
    if best is not None:
        who = imgs[best]["table"]["entity"]
        out.append(_qa(f"Which {facts['entity_noun']} has the highest {c} value?",
                       f"{_fmt({i: val[i][c] for i in sorted(val)})} for {c}; the highest is Image {best + 1}, "
                       f"which is {who}.", who, cat, "best_entity"))
    c = rng.choice(cats)
    col = {i: v[c] for i, v in val.items()}
    lo, hi = min(col.values()), max(col.values())
    if hi - lo >= 2:
        threshold = round(lo + (hi - lo) * rng.uniform(0.3, 0.7))
        if threshold not in col.values():
            above = [i for i, v in col.items() if v > threshold]
            out.append(_qa(f"In how many images is the {c} value above {threshold}?",
                           f"{_fmt(col)} for {c}; above {threshold}: "
                           + (", ".join(f"Image {i}" for i in above) or "none") + f", so {len(above)}.",
                           str(len(above)), cat, "count_above"))
    peaks = {i: _unique_best(list(v.values())) for i, v in val.items()}
    a, b = sorted(rng.sample(list(val), 2))
    if peaks[a] is not None and peaks[b] is not None:
        pa, pb = cats[peaks[a]], cats[peaks[b]]
        out.append(_qa(f"Do Image {a} and Image {b} peak in the same {noun}?",
                       f"Image {a} is highest in {pa} and Image {b} in {pb}: "
                       f"{'the same' if pa == pb else 'different'} {noun}s.", "Yes" if pa == pb else "No", cat,
                       "same_peak"))
    return out


def _order_questions(facts: dict, rng: random.Random, cat: str) -> list[dict]:
    prices = facts["images"][0]["table"]["values"]
    orders = {img["number"]: img["table"]["values"] for img in facts["images"][1:]}
    cost = {i: round(sum(q * prices[g] for g, q in o.items()), 2) for i, o in orders.items()}
    out = []
    i = rng.choice(list(orders))
    parts = " + ".join(f"{q} x {money(prices[g])}" for g, q in orders[i].items())
    out.append(_qa(f"Using the prices in Image 1, what does the order in Image {i} cost?",
                   f"Image {i} orders " + ", ".join(f"{q} {g}" for g, q in orders[i].items())
                   + f"; at the prices of Image 1 that is {parts} = {money(cost[i])}.", money(cost[i]), cat,
                   "order_cost"))
    if len(orders) >= 2:
        best = _unique_best(list(cost.values()))
        if best is not None:
            j = list(cost)[best]
            out.append(_qa("Using the prices in Image 1, which order costs the most?",
                           "Costs: " + ", ".join(f"Image {k} {money(v)}" for k, v in cost.items())
                           + f"; Image {j} costs the most.", f"Image {j}", cat, "most_expensive"))
    good = rng.choice(sorted({g for o in orders.values() for g in o}))
    having = {k: o[good] for k, o in orders.items() if good in o}
    total = sum(having.values())
    out.append(_qa(f"How many {good} are ordered in all the orders together?",
                   ", ".join(f"Image {k} orders {q}" for k, q in having.items()) + f"; {total} in all.", str(total),
                   cat, "item_total"))
    return out


def set_questions(facts: dict, seed: int = 0) -> list[dict]:
    """The template questions of one set (``question``, ``explanation``, ``answer``, ``category``,
    ``program`` each), every answer computed from ``facts["images"][*]["table"]``."""
    rng = random.Random(f"cosyn-qa:{seed}:{facts['set_id']}")
    cat = image_category(facts)
    build = _series_questions if facts["kind"] == "series" else _order_questions
    return build(facts, rng, cat)


def render_items(facts: dict) -> list[Any]:
    """The render item of each image, in order (``pipelines.render.render_png`` draws them)."""
    return [from_dict(img["item"]) for img in facts["images"]]

