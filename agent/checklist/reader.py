"""The reader: sentences of noun phrases read as entities, attributes, counts, relations, text and negation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ideaforge.agent.checklist.negation import Negation
from ideaforge.agent.checklist.phrases import AP, NP, _chunk, of_phrases
from ideaforge.agent.checklist.poses import body_part, new_clause, participle, predicate
from ideaforge.agent.checklist.questions import link
from ideaforge.agent.checklist.styles import read_fragments, read_styles
from ideaforge.agent.checklist.words import (
    _ENDS,
    _HAVE,
    _SENTENCE_END,
    Tok,
    _data,
    _merge_phrases,
    _plural,
    _tag,
    _tokens,
    _unquoted_text,
    lemma,
    owned,
    possessive,
)
from ideaforge.agent.models import Check, LLMCheck


def _list_goes_on(units: list[Any], k: int) -> bool:
    """Whether the noun phrase at k, after a comma, is an item of a list that ends with 'and'/'or' ('a hat, a scarf
    and gloves'). 'A squid devouring a planet, cosmic horror, digital art' is a run of fragments, not of objects."""
    for u in units[k + 1:]:
        if isinstance(u, NP) or (isinstance(u, Tok) and u.low == ","):
            continue
        return isinstance(u, Tok) and u.low in ("and", "or")
    return False


def _unwrapped(text: str) -> str:
    """An idea pasted inside quotes ('"A rare set of six ""Merryman"" plates."', a spreadsheet cell) is the idea,
    not a text to write: the outer quotes become spaces and doubled quotes single ones, keeping every offset."""
    body = text.strip()
    if len(body) < 3 or body[0] != '"' or body[-1] != '"':
        return text
    inner = body[1:-1]
    if '"' in inner.replace('""', "") or ('""' not in inner and len(inner.split()) < 6):
        return text  # '"HELLO"' alone asks for the word HELLO
    at = text.index('"')
    end = text.rindex('"')
    return text[:at] + " " + inner.replace('""', ' "') + " " + text[end + 1:]


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
        self.text = _unwrapped(text)
        self.d = _data()
        self.raw: list[tuple[str, str, str | None, str | None]] = []  # kind, subject, value, object
        self.neg = Negation(text)
        self.history: list[NP] = []  # noun phrases read so far, for pronouns
        self.pp_objects: set[int] = set()  # noun phrases read as the object of a preposition
        self.second_person = bool(re.search(r"(?i)\b(?:you|your|yourself)\b", text))  # "bend your knees"

    def add(self, kind: str, subject: str, value: str | None = None, obj: str | None = None) -> None:
        item = (kind, subject, value, obj)
        if subject and item not in self.raw:
            self.raw.append(item)

    def _animate(self, np: NP) -> bool:
        return np.head.lower() in self.d["_animate"] or lemma(np.head) in self.d["_animate"]

    def _part_of(self, part: NP, whole: NP) -> bool:
        """Whether `whole` is a kind of thing that has `part` ("a tree with green leaves": a tree has leaves)."""
        owners = self.d["_owners_of"]
        kinds = owners.get(lemma(part.head), set()) | owners.get(part.head.lower(), set())
        return lemma(whole.head) in kinds or whole.head.lower() in kinds

    def _bridge(self, part: NP) -> NP | None:
        """The one earlier thing a definite part belongs to: 'a big motorcycle ... the seats are very big'."""
        seen = [np for np in self.history if not np.negated and owned(np.subject) is None]
        if any(lemma(np.head) == lemma(part.head) for np in seen):
            return None  # "a door ... the door": the same door again
        fits = {lemma(np.head): np for np in seen if self._part_of(part, np)}
        return next(iter(fits.values())) if len(fits) == 1 else None

    def _again(self, np: NP) -> NP | None:
        """The one earlier thing of this name that has an owner: 'an entity with wispy wings, glowing wings'."""
        same = [h for h in self.history if not h.negated and lemma(h.head) == lemma(np.head) and h is not np]
        owners = {h.subject for h in same if owned(h.subject) is not None}
        if len(owners) != 1 or any(owned(h.subject) is None for h in same):
            return None
        return next(h for h in same if owned(h.subject) is not None)

    def _thing(self, np: NP) -> bool:
        """A thing to look for in the picture: not a word about the picture, a time or a place in it."""
        d = self.d
        if owned(np.subject) is not None and np.head.lower() in d["_owners_of"]:
            return True  # "the helicopter's side": a part of a thing is a thing
        if np.subject.lower() in d["_time_words"] and np.head.lower() in d["_mass_nouns"] and np.adjectives:
            return True  # "loose snow", "thick fog": weather with a look of its own is something to see
        return not (np.head.lower() in d["_skip_entities"] or np.subject.lower() in d["_skip_entities"]
                    or np.subject.lower() in d["_time_words"]
                    or (np.head.lower() in d["_place_words"] and len(np.words) == 1))

    def entity(self, np: NP) -> None:
        d = self.d
        if np.negated:
            return
        skip = not self._thing(np)
        if not skip:
            self.add("entity", np.subject)
        if np.quote:
            self.add("text", np.subject if not skip else "text", np.quote)
        if skip:
            return
        if np.count is not None and np.count != 0:
            self.add("count", np.counted or np.subject, str(np.count))
        for adj in np.adjectives:
            if adj not in d["_not_attributes"] and adj not in d["_determiners"]:
                self.add("attribute", np.subject, adj)
        if np.quantity:
            self.add("attribute", np.subject, np.quantity)

    def run(self) -> None:
        toks = _merge_phrases(_unquoted_text(_tokens(self.text), self.text))
        _tag(toks)
        read_styles(toks, self.add)
        fragments = read_fragments(toks)
        units = _chunk(toks)
        self._tell_apart([u for u in units if isinstance(u, NP)])
        sentences: list[list[Any]] = [[]]
        for u in units:
            if isinstance(u, Tok) and u.tag == "PUNCT" and u.low in _SENTENCE_END:
                sentences.append([])
            else:
                sentences[-1].append(u)
        for s in sentences:
            if s:
                self._sentence(of_phrases(self.text, s, self.add))
        if fragments:
            main = next((np.subject for np in self.history if not np.negated and self._thing(np)), "image")
            for kind, value in fragments:
                self.add(kind, main, value)  # what the whole picture, its main subject, looks like
        # "fantasy digital art", "a pencil sketch of a horse": the longer style says all that "digital art" and
        # "sketch" said
        kinds = [r[2].lower() for r in self.raw if r[0] == "style" and r[2]]
        self.raw = [r for r in self.raw if not (r[:2] == ("style", "image") and r[2]
                                                and any(k.endswith(" " + r[2].lower()) for k in kinds))]

    def _tell_apart(self, nps: list[NP]) -> None:
        """'a red square, a blue square and three purple squares': three different squares (DSG's square_1,
        square_2...), told apart by colour. Their colours join their names, so each has its own existence and
        count check ('Are there three purple squares?') instead of one square that is red, blue and purple."""
        colours = self.d["_colors"]
        by_head: dict[str, set[tuple[str, ...]]] = {}
        for np in nps:
            own = tuple(a for a in np.adjectives if a in colours)
            if own and owned(np.subject) is None:
                by_head.setdefault(lemma(np.head), set()).add(own)
        for np in nps:
            own = tuple(a for a in np.adjectives if a in colours)
            if own and len(by_head.get(lemma(np.head), ())) > 1 and owned(np.subject) is None:
                np.words = [*own, *np.words]
                np.adjectives = [a for a in np.adjectives if a not in own]
                if np.counted:
                    np.counted = " ".join([*own, np.counted])

    def resolve(self, pronoun: str, exclude: list[NP], animate: bool = False) -> NP | None:
        """What a pronoun refers to: the latest fitting noun phrase ('it' a thing, 'they' many, 'he' a person).

        `animate`: the pronoun owns a body part ("its mouth"), so only a person or an animal fits.
        """
        d = self.d
        for np in reversed(self.history):
            if np in exclude or np.negated or owned(np.subject) is not None:
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
        fragment = False  # the group is a comma fragment after the clause's subject ("…, hanging vines")
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
                    at = neg_start if neg_start is not None else u.start
                    # ", no stars" after a list is said of the picture, not of the noun before it: no rephrasing
                    # host ("a starless circle"); "a house with no windows" is said of the house.
                    before = re.sub(r"\s+", " ", self.text[:at]).rstrip().lower()
                    clause = not before or before.endswith((",", ";", ":", " and", " but"))
                    self.neg.negate(u, at, units, k, None if clause else (last or subject))
                    neg, neg_start = None, None
                    prev = u
                    continue
                part = (lemma(u.head) in d["_body_parts"] or u.head.lower() in d["_clothing"]) and owned(u.subject) is None
                own = self.text[u.start:u.end].lower()
                if part and not u.owner and (own.startswith("the ") or not own.startswith(("a ", "an ", "some "))):
                    u.owner = "its"  # "The right arm is extended" in a text about a person: the person's arm
                    ref = self.resolve("its", exclude=[u], animate=True)
                    if ref is not None:
                        u.words = [possessive(ref.subject), *u.words]
                    elif self.second_person and lemma(u.head) in d["_body_parts"]:
                        u.words = ["your", *u.words]  # "sit with legs forward": the reader's own legs
                    else:
                        u.owner = None  # no one to own it here; the sentence may still say whose it is
                elif u.owner:
                    ref = self.resolve(u.owner, exclude=[u], animate=part)
                    if ref is not None and ref.subject.lower() not in (w.lower() for w in u.words):
                        u.words = [possessive(ref.subject), *u.words]
                after = units[k + 1] if k + 1 < len(units) else None
                coordinated = isinstance(prev, Tok) and bool(group) and (
                    prev.low in ("and", "or") or (prev.low == "," and objects and not (
                        isinstance(after, Tok) and after.tag in ("REL", "VERB", "AUX")) and _list_goes_on(units, k)))
                worn = u.head.lower() in d["_clothing"] or lemma(u.head) in d["_body_parts"]
                if coordinated and objects and last_pred is not None and self._animate(u) and (
                        set(last_pred[1].split()) & {"wearing", "wears", "wear", "dressed"}
                        or (last_pred[1] == "with" and last is not None and owned(last.subject) is not None)):
                    coordinated = False  # "a man wearing a jacket and a woman ...": no one wears the woman
                    # (nor has her as "a girl with red hair and a boy" has the hair)
                if pred == ["with"] and pred_subject and worn and not self._animate(pred_subject[0]) \
                        and not self._part_of(u, pred_subject[0]):  # "a shirt with a black collar": the shirt's
                    # "a girl on a bench with red hair": hair and clothes go to the nearest person or animal
                    wearer = next((np for np in reversed(self.history) if self._animate(np) and not np.negated
                                   and owned(np.subject) is None), None)
                    if wearer is None and pred_subject[0] is subject and id(subject) not in self.pp_objects:
                        wearer = subject  # "five eggs with smile faces": the eggs' faces
                    pred_subject = [wearer] if wearer is not None else []
                    if wearer is None:
                        pred = []  # "sit on the floor with legs forward": not the floor's legs
                owner_pred = pred if pred and pred_subject else (last_pred[1].split() if coordinated and objects and last_pred else [])
                owners = pred_subject if pred else (last_pred[0] if last_pred else [])
                # "topped with cheese", "covered with snow": what is on a thing, not a part it has
                bare = owner_pred[-1:] != ["with"] or len(owner_pred) == 1 or owner_pred[-2] not in d["_covering_verbs"]
                if owner_pred and bare and (owner_pred[-1] in _HAVE or (owner_pred == ["in"] and worn)) and len(owners) == 1 \
                        and owners[0] is not None and not self._animate(u) \
                        and (owner_pred[-1] not in ("with", "in") or ((u.adjectives or worn) and owners[0] is subject)
                             or (worn and self._animate(owners[0]))
                             or (owner_pred[-1] == "with" and self._part_of(u, owners[0]))) \
                        and owners[0].head.lower() not in d["_time_words"] | d["_skip_entities"] \
                        and not u.owner and owned(u.subject) is None and u.head.lower() not in d["_skip_entities"]:
                    u.words = [possessive(owners[0].subject), *u.words]  # "a girl with rainbow hair": the girl's hair
                    u.owned = True
                elif not u.owner and owned(u.subject) is None and (own.startswith("the ") or (
                        isinstance(prev, Tok) and prev.low == "," and not coordinated
                        and not own.startswith(("a ", "an ", "some ")))):  # "a tower ..., windows, ramparts"
                    again = self._again(u)
                    whole = self._bridge(u) if again is None else None
                    if again is not None:
                        u.words, u.owned = list(again.words), again.owned  # "wispy wings, glowing wings": the same
                    elif whole is not None:
                        u.words = [possessive(whole.subject), *u.words]  # "a motorcycle ... the seats": its seats
                if isinstance(prev, Tok) and prev.tag == "PREP":
                    self.pp_objects.add(id(u))
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
                if pred and pred_subject and pred_verb and participle(pred[-1]) and new_clause(units, k) \
                        and all(body_part(np) for np in pred_subject if np is not None):
                    flush()  # "legs spread right arm up": the arm starts a clause of its own
                    subject, group, objects, pred_subject = u, [u], False, []
                if not u.negated and (body_part(u) or (self._animate(u) and isinstance(after, Tok) and after.tag == "AUX")):
                    value = predicate(self.text, units, k)
                    if value:
                        self.add("attribute", u.subject, value)  # "left arm out to the side"
                if pred and pred_subject:
                    relate(u)
                elif coordinated and objects and last_pred is not None and not (
                        isinstance(after, Tok) and after.tag == "AUX" and isinstance(prev, Tok) and prev.low == "and"):
                    self._relate(last_pred[0], last_pred[1], u)  # "wearing a hat and a scarf"
                    group.append(u)
                elif coordinated:
                    group.append(u)
                else:
                    if front_place is not None and front_prep is not None and subject is None:
                        self._relate([u], front_prep, front_place)
                    group, objects = [u], False
                    fragment = subject is not None and isinstance(prev, Tok) and prev.low == "," and not pred
                if subject is None:
                    subject = u
                last = u
                after_aux = False
            elif isinstance(u, AP):
                target = pred_subject if (pred or after_aux) and pred_subject else ([last] if last else [])
                if target == [last] and last is not None and not self._thing(last) and last_pred is not None:
                    target = last_pred[0]  # "the left arm down to the side and slightly bent": the arm
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
            elif u.tag == "NUM" and pred and pred_subject and pred[-1] in d["_prepositions_set"] and not (
                    k + 1 < len(units) and isinstance(units[k + 1], NP)):
                for np in pred_subject:  # "made in 1985", "born in 1920": a year or a number is no thing
                    if np is not None and not np.negated:
                        self.add("attribute", np.subject, f"{' '.join(pred)} {u.text}")
                pred = []
            elif u.tag == "NEG":
                neg = u
                neg_start = self.neg.lead_in(units, k)
            elif u.tag == "NEGSUF":
                self.neg.negated.append(NP(u.value, [u.value], start=u.start, end=u.end, negated=True))
                self.neg.removed.append((u.start, u.end))
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
                    elif fragment and subject and isinstance(prev, Tok) and prev.low == "," and u.low.endswith("ing"):
                        who = [subject]  # "a house covered in plants, hanging vines, floating on a cloud": the house
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
                    if objects and last_pred is not None and last_pred[2] and prep in d["_spatial"] and prev is last:
                        pred_subject = last_pred[0]  # "a cat on a mat under a tree": the cat, under the tree
                    else:
                        pred_subject = group if group and last in group else [last]
                    pred = [prep]
                    pred_verb = False
                after_aux = False
            elif u.tag in ("CONJ", "PUNCT"):
                if pred and isinstance(prev, Tok) and prev.tag == "PREP" and u.low == ",":
                    flush()  # "bent back in, left arm out": "in" ends its clause, it takes no object
                    pred = []
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
            if predicate in d["_material_preps"]:  # "made from shattered black glass": the material as said
                self.add("attribute", s.subject, " ".join([predicate, *obj.adjectives, obj.subject]))
                continue
            if s.head.lower() in d["_skip_entities"] or obj.head.lower() in d["_skip_entities"]:
                if obj.head.lower() in d["_skip_entities"] and s.head.lower() not in d["_skip_entities"] and (
                        predicate in d["_spatial"] or predicate.split()[-1] in d["_prepositions_set"]):
                    self.add("attribute", s.subject, f"{predicate} the {obj.subject}")  # "in the center", "tilted to the side"
                continue
            self.add("relation", s.subject, predicate, obj.subject)


def analyze(idea_en: str) -> Analysis:
    """Read an English idea into checks, negated objects and the positive text without them. Deterministic."""
    reader = _Reader(idea_en)
    reader.run()
    checks = [LLMCheck(kind=kind, subject=subject, value=value, object=obj)  # type: ignore[arg-type]
              for kind, subject, value, obj in reader.raw]
    negated: list[str] = []
    for np in reader.neg.negated:
        if np.subject not in negated:
            negated.append(np.subject)
    checks += [LLMCheck(kind="absent", subject=name) for name in negated]
    return Analysis(link(checks), negated, reader.neg.positive(), sorted(reader.neg.removed))


