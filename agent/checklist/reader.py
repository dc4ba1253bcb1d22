"""The reader: sentences of noun phrases read as entities, attributes, counts, relations, text and negation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ideaforge.agent.checklist.phrases import AP, NP, _chunk
from ideaforge.agent.checklist.questions import _plural, link
from ideaforge.agent.checklist.words import (
    _ENDS,
    _HAVE,
    _PART_OF,
    _SENTENCE_END,
    Tok,
    _data,
    _merge_phrases,
    _tag,
    _tokens,
    _unquoted_text,
    lemma,
)
from ideaforge.agent.models import Check, LLMCheck


# -- reading the phrases ---------------------------------------------------------------------------------------------
@dataclass
class Analysis:
    """What the rules reader found in an idea."""

    checks: list[Check]
    negated: list[str]  # the objects that must not be there, as written
    positive: str  # the idea with its negated parts removed (rephrased where natural)
    removed: list[tuple[int, int]] = field(default_factory=list)  # character spans of the idea left out


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.d = _data()
        self.raw: list[tuple[str, str, str | None, str | None]] = []  # kind, subject, value, object
        self.negated: list[NP] = []
        self.removed: list[tuple[int, int]] = []
        self.rephrase: dict[int, str] = {}  # NP start offset -> adjective to insert ("empty")
        self.history: list[NP] = []  # noun phrases read so far, for pronouns

    def add(self, kind: str, subject: str, value: str | None = None, obj: str | None = None) -> None:
        item = (kind, subject, value, obj)
        if subject and item not in self.raw:
            self.raw.append(item)

    def entity(self, np: NP) -> None:
        d = self.d
        if np.negated:
            return
        skip = (np.head.lower() in d["_skip_entities"] or np.subject.lower() in d["_skip_entities"]
                or np.subject.lower() in d["_time_words"] or (np.head.lower() in d["_place_words"] and len(np.words) == 1))
        if not skip:
            self.add("entity", np.subject)
        if np.quote:
            self.add("text", np.subject if not skip else "text", np.quote)
        if skip:
            return
        if np.count is not None and np.count != 0:
            self.add("count", np.subject, str(np.count))
        for adj in np.adjectives:
            if adj not in d["_not_attributes"] and adj not in d["_determiners"]:
                self.add("attribute", np.subject, adj)
        if np.quantity:
            self.add("attribute", np.subject, np.quantity)

    def run(self) -> None:
        toks = _merge_phrases(_unquoted_text(_tokens(self.text), self.text))
        _tag(toks)
        self._styles(toks)
        units = _chunk(toks)
        sentences: list[list[Any]] = [[]]
        for u in units:
            if isinstance(u, Tok) and u.tag == "PUNCT" and u.low in _SENTENCE_END:
                sentences.append([])
            else:
                sentences[-1].append(u)
        for s in sentences:
            if s:
                self._sentence(self._of_phrases(s))

    # "a group of women" -> women (a group); "a bottle of red wine" stays two things, related by "of".
    def _of_phrases(self, units: list[Any]) -> list[Any]:
        d = self.d
        out: list[Any] = []
        i = 0
        while i < len(units):
            u = units[i]
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and self.text[u.start:u.end].split()[-1][:1].isupper()
                    and self.text[units[i + 2].start:units[i + 2].end].split()[-1][:1].isupper()):
                name: NP = units[i + 2]  # "the Statue of Liberty", "Bank of America": one name
                name.words = [*u.words, "of", *name.words]
                name.head = name.words[-1]
                name.adjectives = u.adjectives + name.adjectives
                name.start = u.start
                out.append(name)
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and len(u.words) == 1 and not units[i + 2].owner
                    and (u.head.lower() in _PART_OF or lemma(u.head) in d["_body_parts"])):
                whole: NP = units[i + 2]  # "the back of an elephant": the elephant's back
                u.whole = whole
                u.words = [f"{whole.subject}'s", *u.words]
                out.append(u)
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and u.head.lower() in d["_quantity_nouns"] and len(u.words) == 1):
                inner: NP = units[i + 2]
                inner.start = u.start
                if inner.count is None and u.count is not None:
                    inner.count = u.count
                head = u.head.lower()
                if head in ("slice", "slices", "piece", "pieces", "bar", "bars", "loaf", "scoop", "chunk", "strip"):
                    inner.words = [f"{head} of", *inner.words]  # "a square slice of pizza": the slice is the thing
                    inner.adjectives = u.adjectives + inner.adjectives
                elif head not in ("set", "sets", "collection", "series", "variety", "varieties", "assortment", "array",
                                  "kinds", "types", "sorts", "number", "selection",
                                  "lot", "lots", "kind", "type", "sort", "bit", "bits", "amount", "plenty", "top",
                                  "side", "front", "back", "middle", "center", "centre", "edge", "corner", "rest",
                                  "part", "most", "view", "image", "picture", "shape", "full", "pair", "couple",
                                  "dozens", "hundreds", "thousands"):
                    inner.quantity = " ".join(["in a", *u.adjectives, head])  # "a tall stack of books": in a tall stack
                else:
                    inner.adjectives = u.adjectives + inner.adjectives
                out.append(inner)
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], Tok) and units[i + 2].tag == "NUM" and u.head.lower() in d["_quantity_nouns"]
                    and isinstance(units[i + 2].value, int)):
                before = next((x for x in reversed(out) if isinstance(x, NP)), None)
                if before is not None and before.count is None:
                    before.count = units[i + 2].value  # "cocktail napkins, set of four"
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and u.head.lower() in d["_frame_of"] and len(u.words) == 1):
                if u.adjectives:  # "a beautiful portrait of a woman": what kind of picture
                    self.add("style", "image", " ".join([*u.adjectives, u.head.lower()]))
                i += 2  # "a photo of a robot": the robot, read again ("a painting of the Statue of Liberty")
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], AP)):
                u.adjectives = u.adjectives + units[i + 2].adjectives  # "ten squares of purple"
                out.append(u)
                i += 3
                continue
            out.append(u)
            i += 1
        return out

    def _styles(self, toks: list[Tok]) -> None:
        """Medium and artist words ("a watercolor painting", "art by X", "in the style of Y") become style checks."""
        d = self.d
        lows = [t.low for t in toks]
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.tag == "STYLECUE":
                name = []
                j = i + 1
                while j < len(toks) and toks[j].tag != "PUNCT" and (
                        toks[j].low not in ("and", "with", "in", "on", "at")
                        or (toks[j].low == "and" and j + 1 < len(toks) and toks[j + 1].tag == "NOUN")):
                    name.append(toks[j].text)
                    toks[j].tag = "STYLE"  # the artist's name is the style, not a thing in the picture
                    j += 1
                if name:
                    self.add("style", "image", f"{t.low} {' '.join(name)}")
                    t.tag = "PUNCT"
                    t.low = ","
                i = j
                continue
            for ws in d["_style_words"]:
                if tuple(lows[i:i + len(ws)]) == ws:
                    self.add("style", "image", " ".join(ws))
                    i += len(ws) - 1
                    break
            i += 1

    def resolve(self, pronoun: str, exclude: list[NP], animate: bool = False) -> NP | None:
        """What a pronoun refers to: the latest fitting noun phrase ('it' a thing, 'they' many, 'he' a person).

        `animate`: the pronoun owns a body part ("its mouth"), so only a person or an animal fits.
        """
        d = self.d
        for np in reversed(self.history):
            if np in exclude or np.negated or "'s" in np.subject:
                continue
            if animate:
                if np.head.lower() in d["_animate"] or lemma(np.head) in d["_animate"]:
                    if pronoun not in ("they", "them", "their") or _plural(np.subject) or np.head.lower() in d["_person_words"]:
                        return np
                continue
            plural = _plural(np.subject) or np.count not in (None, 1) or np.quantity is not None
            if pronoun in ("they", "them", "their", "themselves") and not plural and np.head.lower() not in d["_person_words"]:
                continue
            if pronoun in ("it", "its", "itself") and (plural or np.head.lower() in d["_person_words"]):
                continue
            if pronoun in ("he", "him", "his", "himself", "she", "her", "herself") and (
                    plural or np.head.lower() not in d["_person_words"]):
                continue
            return np
        if pronoun in ("he", "him", "his", "himself", "she", "her", "herself", "they", "them", "their") and self.history:
            return self.history[0]  # the idea's first subject
        return None

    def _sentence(self, units: list[Any]) -> None:
        d = self.d
        subject: NP | None = None  # the clause's subject
        last: NP | None = None  # the last noun phrase
        group: list[NP] = []  # coordinated noun phrases ("a cat and a dog", "a hat, a vest and a tie")
        objects = False  # the group is the object of the last relation
        pred: list[str] = []  # the relation being read ("sitting on")
        pred_subject: list[NP] = []
        pred_verb = False
        last_pred: tuple[list[NP], str, bool] | None = None  # subjects, predicate, ends with a preposition
        front_prep: str | None = None  # "In the background, there is a tree": in
        front_place: NP | None = None  # ... the background
        neg: Tok | None = None
        neg_start: int | None = None
        after_aux = False
        prev: Any = None

        def flush() -> None:
            """A verb with no object: a state of its subject ("a person running", "a man is shaving")."""
            nonlocal pred
            if pred and pred_verb and pred_subject and (pred[-1] not in d["_prepositions_set"] or pred[-1] in _ENDS):
                for np in pred_subject:
                    if np is not None and not np.negated:
                        self.add("attribute", np.subject, " ".join(pred))
            pred = []

        def relate(np: NP) -> None:
            nonlocal pred, last_pred, objects, group
            predicate = " ".join(pred)
            self._relate(pred_subject, predicate, np)
            last_pred = (list(pred_subject), predicate, pred[-1] in d["_spatial"])
            pred = []
            group, objects = [np], True

        for k, u in enumerate(units):
            if isinstance(u, NP):
                if pred and not pred_subject:
                    pred = []  # "we can see a car": a verb with no subject in the picture says nothing about it
                if neg is not None:
                    u.negated = True
                    self._negate(u, neg_start if neg_start is not None else u.start, units, k, last or subject)
                    neg, neg_start = None, None
                    prev = u
                    continue
                part = (lemma(u.head) in d["_body_parts"] or u.head.lower() in d["_clothing"]) and "'s" not in u.subject
                own = self.text[u.start:u.end].lower()
                if part and not u.owner and (own.startswith("the ") or not own.startswith(("a ", "an ", "some "))):
                    u.owner = "its"  # "The right arm is extended" in a text about a person: the person's arm
                    ref = self.resolve("its", exclude=[u], animate=True)
                    if ref is not None:
                        u.words = [f"{ref.subject}'s", *u.words]
                elif u.owner:
                    ref = self.resolve(u.owner, exclude=[u], animate=part)
                    if ref is not None and ref.subject.lower() not in (w.lower() for w in u.words):
                        u.words = [f"{ref.subject}'s", *u.words]
                after = units[k + 1] if k + 1 < len(units) else None
                coordinated = isinstance(prev, Tok) and bool(group) and (
                    prev.low in ("and", "or") or (prev.low == "," and objects and not (
                        isinstance(after, Tok) and after.tag in ("REL", "VERB", "AUX"))))
                owner_pred = pred if pred and pred_subject else (last_pred[1].split() if coordinated and objects and last_pred else [])
                owners = pred_subject if pred else (last_pred[0] if last_pred else [])
                worn = u.head.lower() in d["_clothing"] or lemma(u.head) in d["_body_parts"]
                if owner_pred and (owner_pred[-1] in _HAVE or (owner_pred == ["in"] and worn)) and len(owners) == 1 \
                        and owners[0] is not None \
                        and (owner_pred[-1] not in ("with", "in") or ((u.adjectives or worn) and owners[0] is subject)) \
                        and owners[0].head.lower() not in d["_time_words"] | d["_skip_entities"] \
                        and not u.owner and "'s" not in u.subject and u.head.lower() not in d["_skip_entities"]:
                    u.words = [f"{owners[0].subject}'s", *u.words]  # "a girl with rainbow hair": the girl's hair
                    u.owned = True
                if u.whole is not None:
                    self.entity(u.whole)
                    self.history.append(u.whole)
                self.entity(u)
                self.history.append(u)
                if front_prep is not None and front_place is None and subject is None:
                    front_place = u  # the place of a fronted "In the background, ..."
                    prev = u
                    pred = []
                    continue
                if pred and pred_subject:
                    relate(u)
                elif coordinated and objects and last_pred is not None:
                    self._relate(last_pred[0], last_pred[1], u)  # "wearing a hat and a scarf"
                    group.append(u)
                elif coordinated:
                    group.append(u)
                else:
                    if front_place is not None and front_prep is not None and subject is None:
                        self._relate([u], front_prep, front_place)
                    group, objects = [u], False
                if subject is None:
                    subject = u
                last = u
                after_aux = False
            elif isinstance(u, AP):
                target = pred_subject if (pred or after_aux) and pred_subject else ([last] if last else [])
                for np in target:
                    if np is not None and not np.negated:
                        for adj in u.adjectives:
                            if pred and pred_verb:
                                self.add("attribute", np.subject, f"{' '.join(pred)} {adj}")  # "pressed back"
                            elif adj not in d["_not_attributes"]:
                                self.add("attribute", np.subject, adj)
                pred = []
            elif u.tag == "QUOTE":
                owner: NP | None = None
                if isinstance(prev, NP):
                    owner = prev  # "the word 'START'", "a computer with the word 'delete'": the word
                elif isinstance(prev, Tok) and prev.tag == "VERB" and pred_subject:
                    owner = pred_subject[0]  # "a sign that says ..."
                elif isinstance(prev, Tok) and prev.low in ("with", ":") and last is not None:
                    owner = last
                else:
                    owner = last
                self.add("text", owner.subject if owner is not None else "text", u.value)
                pred = []
            elif u.tag == "NEG":
                neg = u
                neg_start = self._lead_in(units, k)
            elif u.tag == "NEGSUF":
                self.negated.append(NP(u.value, [u.value], start=u.start, end=u.end, negated=True))
                self.removed.append((u.start, u.end))
            elif u.tag == "PRON":
                if u.low in d["_pronouns_that_refer"]:
                    ref = self.resolve(u.low, exclude=pred_subject if pred else [])
                    if ref is not None:
                        if pred and pred_subject:
                            relate(ref)
                        else:
                            subject = subject or ref
                            last = ref
                            group, objects = [ref], False
                        prev = ref
                        continue
            elif u.tag == "VERB":
                if pred and pred_verb and isinstance(prev, Tok) and prev.tag in ("VERB", "ADV", "AUX"):
                    pred.append(u.low)  # "appears to be leaning", "is being held"
                else:
                    flush()
                    if isinstance(prev, Tok) and prev.tag == "REL" and last is not None:
                        who = group if objects is False and last in group else [last]
                    elif isinstance(prev, NP):
                        if objects and last_pred is not None and last_pred[2]:
                            who = last_pred[0]  # "a man standing on the beach vacuuming sand": the man
                        elif objects and prev.owned and last_pred is not None:
                            who = last_pred[0]  # "a poodle wearing a cap holding a book": the poodle holds it
                        elif objects:
                            who = [prev]  # "a meme showing a cat attacking a shoe": the cat
                        else:
                            who = group if prev in group else [prev]
                    elif after_aux and pred_subject:
                        who = pred_subject
                    else:
                        who = group if (group and not objects) else ([subject] if subject else [])
                    pred_subject = [w for w in who if w is not None]
                    pred = [u.low]
                    pred_verb = True
                after_aux = False
            elif u.tag == "AUX":
                if not pred:
                    if objects and last_pred is not None:
                        pred_subject = last_pred[0]  # "a man in a white uniform is standing": the man
                    else:
                        pred_subject = group if (group and not objects) else ([last] if last else [])
                    pred_verb = False
                after_aux = True
            elif u.tag == "PREP":
                prep = u.value or u.low
                if pred and (pred_verb or (isinstance(prev, Tok) and prev.tag == "PREP")) and (
                        pred[-1] not in d["_spatial"] or isinstance(prev, Tok)):
                    pred.append(prep)  # "sitting on", "looking out of", "are down to"
                elif after_aux and not pred and pred_subject:
                    pred = [prep]  # "is on"
                    pred_verb = False
                elif last is None:
                    front_prep = prep  # a fronted place: the next noun phrase is where
                    pred = []
                else:
                    if objects and last_pred is not None and last_pred[2] and (prep in d["_spatial"] or prep == "with") \
                            and prev is last:
                        pred_subject = last_pred[0]  # "a cat on a mat under a tree": the cat, under the tree
                    else:
                        pred_subject = group if group and last in group else [last]
                    pred = [prep]
                    pred_verb = False
                after_aux = False
            elif u.tag in ("CONJ", "PUNCT"):
                if pred_verb and pred and u.low in (",", "and", "but", "while", "as", "when", "whereas", "–", "—", "-"):
                    flush()
                if u.low in ("while", "as", "when", "but", "whereas"):
                    pred = []
                    group, objects = [], False
                    after_aux = False
            elif u.tag == "REL":
                pred = []
            elif u.tag == "ADV" and pred_subject and (after_aux or (pred and pred_verb)) and u.low not in ("there", "also", "too", "all", "each", "both"):
                pred = [*pred, u.low]  # "the right arm is straight down", "bent forward"
                pred_verb = True
                if after_aux:
                    prev = u
                    continue
            prev = u
        flush()

    def _relate(self, subjects: list[NP], predicate: str, obj: NP) -> None:
        d = self.d
        head = obj.head.lower()
        for s in subjects:
            if s is None or s is obj or s.negated or obj.negated:
                continue
            if head in ("color", "colour", "colors", "colours", "shade", "tone"):
                continue
            if head in d["_frame_of"] and len(obj.words) == 1:
                if " of" in predicate:  # "in the center of the image": where in the picture
                    self.add("attribute", s.subject, f"{predicate} the {obj.subject}")
                continue  # "a woman in the image"
            if head in d["_time_words"] or obj.subject.lower() in d["_time_words"]:
                self.add("attribute", s.subject, f"{predicate} {obj.subject}")  # "at dusk"
                continue
            if head in d["_place_words"] and len(obj.words) == 1:
                self.add("attribute", s.subject, f"{predicate} the {obj.subject}")  # "in the center"
                continue
            if predicate in d["_material_preps"]:
                self.add("attribute", s.subject, f"{predicate} {obj.subject}")
                continue
            if s.head.lower() in d["_skip_entities"] or obj.head.lower() in d["_skip_entities"]:
                if obj.head.lower() in d["_skip_entities"] and predicate in d["_spatial"] and s.head.lower() not in d["_skip_entities"]:
                    self.add("attribute", s.subject, f"{predicate} the {obj.subject}")  # "in the center"
                continue
            self.add("relation", s.subject, predicate, obj.subject)

    def _lead_in(self, units: list[Any], k: int) -> int:
        """Where the negation's words start: 'that has no bananas', 'but no sandpipers', 'with no windows'."""
        start = units[k].start
        j = k - 1
        words: list[Tok] = []
        while j >= 0 and isinstance(units[j], Tok) and len(words) < 2:
            words.insert(0, units[j])
            j -= 1
        lows = tuple(t.low for t in words)
        for ws in self.d["_lead_in"]:
            if lows[-len(ws):] == ws:
                start = words[-len(ws)].start
                break
        return start

    def _negate(self, np: NP, start: int, units: list[Any], k: int, host: NP | None) -> None:
        """A negated object: out of the prompt (with what only refers to it: 'on it'), into `absent`."""
        end = np.end
        # The thing as the idea names it, adjectives included ("orange juice"), articles and quantifiers aside.
        name = re.sub(r"(?i)^(?:(?:a|an|the|any|some|its|their|his|her|single)\s+)+", "", self.text[np.start:np.end]).strip()
        name = name or np.subject
        j = k + 1
        # "a statue of a horse": the whole phrase is what must be absent.
        if j + 1 < len(units) and isinstance(units[j], Tok) and units[j].low == "of" and isinstance(units[j + 1], NP):
            units[j + 1].negated = True
            name = f"{name} of {self.text[units[j + 1].start:units[j + 1].end]}"
            end = units[j + 1].end
            j += 2
        # "without any books on it": the trailing place refers back to the host.
        if j + 1 < len(units) and isinstance(units[j], Tok) and units[j].tag == "PREP" \
                and (units[j].value or units[j].low) in ("on", "in", "inside", "within", "on top of", "at") \
                and isinstance(units[j + 1], Tok) and units[j + 1].tag == "PRON":
            end = units[j + 1].end
            if j + 2 < len(units) and isinstance(units[j + 2], Tok) and units[j + 2].tag == "POSS":
                end = units[j + 2].end
        elif j + 1 < len(units) and isinstance(units[j], Tok) and units[j].tag == "PREP" and isinstance(units[j + 1], NP) \
                and units[j + 1].words and units[j + 1].start < len(self.text) \
                and self.text[units[j + 1].start:units[j + 1].end].lower().startswith(("its ", "their ", "his ", "her ")):
            end = units[j + 1].end  # "no letters on its keyboard": the keyboard is the host's
        self.negated.append(NP(np.head, [name], start=start, end=end, negated=True))
        self.removed.append((start, end))
        if host is not None:
            word = self.d["negation"]["rephrase"].get(lemma(np.head))
            if word == "empty" and lemma(host.head) not in self.d["negation"]["empty_hosts"]:
                word = None  # "an empty street", but not "an empty dog"
            written = self.text[host.start:host.end].split()
            if (len(written) > 1 and written[-1][:1].isupper()) or host.head[:1].isupper() \
                    or host.head.lower() in self.d["_time_words"] | self.d["_skip_entities"]:
                word = None  # not "Ha empty Long Bay", not "at empty night"
            if word and word not in host.adjectives:
                self.rephrase[host.start] = word

    def positive(self) -> str:
        """The idea without its negated parts, rephrased where a word says it ("a street" -> "an empty street")."""
        text = self.text
        pieces: list[str] = []
        pos = 0
        inserts = sorted(self.rephrase.items())
        for start, end in sorted(self.removed):
            if start < pos:
                continue
            pieces.append(text[pos:start])
            pos = end
        pieces.append(text[pos:])
        out = "".join(pieces)
        # The insertions refer to offsets in the original; apply them before the cut, from the back.
        if inserts:
            out = text
            for start, end in sorted(self.removed, reverse=True):
                out = out[:start] + out[end:]
            for at, word in sorted(inserts, reverse=True):
                shift = sum(e - s for s, e in self.removed if e <= at)
                at -= shift
                out = _insert_adjective(out, at, word)
        out = re.sub(r"\s+([,.;:!?])", r"\1", out)
        out = re.sub(r"([,;:])\1+", r"\1", out)
        out = re.sub(r"\s{2,}", " ", out).strip(" ,;:")
        out = re.sub(r"(^|[.;!?]\s*)[,;:]\s*", r"\1", out)
        return out


def _insert_adjective(text: str, at: int, word: str) -> str:
    """Put `word` before the noun phrase that starts at `at`, after its article ('a street' -> 'an empty street')."""
    m = re.match(r"(?i)(an?|the|this|that|some)\s+", text[at:])
    if m:
        article = m.group(1)
        if article.lower() in ("a", "an"):
            article = ("an" if word[0] in "aeiou" else "a") if article.islower() else ("An" if word[0] in "aeiou" else "A")
        return text[:at] + f"{article} {word} " + text[at + m.end():]
    return text[:at] + f"{word} " + text[at:]


def analyze(idea_en: str) -> Analysis:
    """Read an English idea into checks, negated objects and the positive text without them. Deterministic."""
    reader = _Reader(idea_en)
    reader.run()
    checks = [LLMCheck(kind=kind, subject=subject, value=value, object=obj)  # type: ignore[arg-type]
              for kind, subject, value, obj in reader.raw]
    negated: list[str] = []
    for np in reader.negated:
        if np.subject not in negated:
            negated.append(np.subject)
    checks += [LLMCheck(kind="absent", subject=name) for name in negated]
    return Analysis(link(checks), negated, reader.positive(), sorted(reader.removed))


