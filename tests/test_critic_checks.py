"""The per-check CLIP critic: its texts (a pure function), and its verdicts on a tiny random CLIP from a folder."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import ideaforge.tools.critic.scorer as scorer
from ideaforge.agent.models import Check
from ideaforge.errors import InputError
from ideaforge.tools.critic import CLIPCritic, Review, Verdict, alignment
from ideaforge.tools.critic.checks import TEMPLATE, CheckTexts, CLIPCheckCritic, check_texts
from ideaforge.tools.critic.thresholds import CHECK_MARGIN
from ideaforge.tools.critic.verdicts import CheckLike

IDEA = "a red kitten in a basket with three apples, watercolor, no people"


def check(kind: str, subject: str, value: str | None = None, obj: str | None = None, *, id: int = 1,
          depends_on: list[int] | None = None) -> Check:
    return Check(id=id, kind=kind, subject=subject, value=value, object=obj, question=f"{kind} {subject}?",
                 depends_on=depends_on or [])


CHECKS = [  # six checks of one idea, one of each kind CLIP judges plus a relation
    check("entity", "kitten", id=1),
    check("attribute", "kitten", "red", id=2, depends_on=[1]),
    check("count", "apples", "3", id=3),
    check("style", "image", "watercolor", id=4),
    check("absent", "people", id=5),
    check("relation", "kitten", "in", "basket", id=6, depends_on=[1]),
]


def noise_images(n: int, size: int = 48, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture
def critic(tiny_clip_dir: Path) -> CLIPCheckCritic:
    return CLIPCheckCritic(str(tiny_clip_dir), device="cpu").load()


# --- the texts, a pure function -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "text", "contrasts"),
    [
        (check("entity", "kitten"), "a photo of a kitten", ("a photo",)),
        (check("entity", "the owl"), "a photo of an owl", ("a photo",)),
        (check("entity", "people"), "a photo of people", ("a photo",)),
        (check("attribute", "kitten", "red"), "a photo of a red kitten", ("a photo of a kitten",)),
        (check("attribute", "apple", "orange"), "a photo of an orange apple", ("a photo of an apple",)),
        (check("attribute", "kitten", "made of wool"), "a photo of a kitten made of wool", ("a photo of a kitten",)),
        (check("count", "apples", "3"), "a photo of three apples", ("a photo of two apples", "a photo of four apples")),
        (check("count", "boxes", "two"), "a photo of two boxes", ("a photo of one box", "a photo of three boxes")),
        (check("count", "puppy", "1"), "a photo of one puppy", ("a photo of two puppies",)),
        (check("count", "children", "2"), "a photo of two children",
         ("a photo of one child", "a photo of three children")),
        (check("count", "cats", "25"), "a photo of 25 cats", ("a photo of 24 cats", "a photo of 26 cats")),
        (check("count", "birds", "several"), "a photo of several birds", ("a photo of one bird",)),
        (check("style", "image", "watercolor"), "a watercolor painting of a red kitten in a basket",
         ("a photo of a red kitten in a basket",)),
        (check("style", "image", "oil painting"), "an oil painting of a red kitten in a basket",
         ("a photo of a red kitten in a basket",)),
        (check("style", "image", "pixel art"), "a pixel art image of a red kitten in a basket",
         ("a photo of a red kitten in a basket",)),
        (check("style", "image", "35mm photo"), "a 35mm photo of a red kitten in a basket",
         ("a painting of a red kitten in a basket",)),
    ],
)
def test_text_and_contrast_per_kind(c: Check, text: str, contrasts: tuple[str, ...]):
    idea = f"a red kitten in a basket, {c.value}" if c.kind == "style" else IDEA
    assert check_texts(c, idea) == CheckTexts(text, contrasts)


def test_absent_is_the_entity_pair_inverted():
    assert check_texts(check("absent", "people"), IDEA) == CheckTexts("a photo of people", (TEMPLATE,), inverted=True)
    assert check_texts(check("entity", "people"), IDEA) == CheckTexts("a photo of people", (TEMPLATE,))


def test_relations_text_and_unusable_checks_have_no_texts():
    assert check_texts(check("relation", "kitten", "in", "basket"), IDEA) is None
    assert check_texts(check("text", "sign", "OPEN"), IDEA) is None
    assert check_texts(check("count", "apples", "0"), IDEA) is None
    # Anything shaped like a check works (the tools layer does not know the agent's model).
    odd = SimpleNamespace(id=9, kind="attribute", subject="kitten", value=None, object=None, question="",
                          depends_on=[])
    assert check_texts(odd, IDEA) is None


# --- verdicts through the real model ----------------------------------------------------------------------------


def test_one_review_per_image_one_verdict_per_check_in_order(critic: CLIPCheckCritic):
    reviews = critic.review(noise_images(3), CHECKS, IDEA)
    assert len(reviews) == 3
    for r in reviews:
        assert isinstance(r, Review) and r.critic == "clip"
        assert [v.check for v in r.verdicts] == [c.id for c in CHECKS]
        assert all(v.critic == "clip" for v in r.verdicts)
        judged = [v for v in r.verdicts if v.passed is not None]
        assert len(judged) == 5 and all(0.0 <= v.probability <= 1.0 for v in judged)  # type: ignore[operator]
        assert r.alignment == alignment(r.verdicts, CHECKS)
        assert r.seconds > 0


def test_relations_and_text_are_unverified_not_guessed(critic: CLIPCheckCritic):
    checks = [check("relation", "kitten", "in", "basket", id=1), check("text", "sign", "OPEN", id=2)]
    [r] = critic.review(noise_images(1), checks, IDEA)
    assert [(v.passed, v.probability) for v in r.verdicts] == [(None, None), (None, None)]
    assert all(v.reason == "CLIP cannot judge relations/written text" for v in r.verdicts)
    assert r.alignment is None and r.calls == 0


def test_nothing_to_judge_loads_no_model(tmp_path: Path):
    lazy = CLIPCheckCritic(str(tmp_path / "no-such-clip"), device="cpu")
    [r] = lazy.review(noise_images(1), [check("text", "sign", "OPEN")], IDEA)
    assert r.verdicts[0].passed is None and lazy.clip is None
    assert lazy.review([], CHECKS, IDEA) == []


def test_probability_is_the_softmax_of_clip_logits_computed_independently(critic: CLIPCheckCritic,
                                                                          tiny_clip_dir: Path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    images = noise_images(2, seed=3)
    reviews = critic.review(images, CHECKS, IDEA)
    model = CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(tiny_clip_dir))
    for c in CHECKS[:5]:
        texts = check_texts(c, IDEA)
        assert texts is not None
        batch = processor(text=[texts.text, *texts.contrasts], images=images, return_tensors="pt", padding=True)
        with torch.inference_mode():
            logits = model(**batch).logits_per_image  # logit_scale.exp() x cosine
        rival = logits[:, 1:].max(dim=1).values
        present = torch.softmax(torch.stack([logits[:, 0], rival], dim=1), dim=1)[:, 0]
        expected = 1 - present if texts.inverted else present
        got = torch.tensor([r.verdicts[c.id - 1].probability for r in reviews])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_passed_follows_the_margin(tiny_clip_dir: Path):
    images = noise_images(4, seed=5)
    for margin in (0.0, CHECK_MARGIN, 0.3):
        for r in CLIPCheckCritic(str(tiny_clip_dir), device="cpu", margin=margin).review(images, CHECKS, IDEA):
            for c, v in zip(CHECKS, r.verdicts):
                if v.passed is None:
                    continue
                assert v.probability is not None
                present = 1 - v.probability if c.kind == "absent" else v.probability
                assert (present > 0.5 + margin) == (v.passed if c.kind != "absent" else not v.passed)
    with pytest.raises(InputError, match="margin 0.5"):
        CLIPCheckCritic(str(tiny_clip_dir), margin=0.5)


def test_absent_is_the_inverse_of_the_entity_check(critic: CLIPCheckCritic):
    checks = [check("entity", "people", id=1), check("absent", "people", id=2)]
    for r in critic.review(noise_images(3, seed=7), checks, IDEA):
        there, absent = r.verdicts
        assert absent.probability == pytest.approx(1 - there.probability)  # type: ignore[operator]
        assert absent.passed is (not there.passed)


def _stub(monkeypatch: pytest.MonkeyPatch, critic: CLIPCheckCritic, texts: dict[str, list[float]],
          images: list[list[float]]) -> None:
    """Embeddings chosen by the test: each text and image a unit vector, so who beats whom is known."""
    import torch

    def unit(rows: list[list[float]]) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)

    monkeypatch.setattr(critic._scorer, "_embed_texts", lambda ts: (unit([texts[t] for t in ts]), []))
    monkeypatch.setattr(critic._scorer, "_embed_images", lambda ims: unit(images[: len(ims)]))


def test_absent_passes_when_the_thing_does_not_beat_the_contrast(critic: CLIPCheckCritic,
                                                                  monkeypatch: pytest.MonkeyPatch):
    people = [1.0, 0.0]
    _stub(monkeypatch, critic, {"a photo of people": people, TEMPLATE: [0.0, 1.0]}, [people, [0.0, 1.0]])
    crowd, empty = critic.review(["crowd", "empty"], [check("absent", "people")], IDEA)
    assert crowd.verdicts[0].passed is False and crowd.verdicts[0].probability < 0.1  # type: ignore[operator]
    assert "'a photo of people' beats 'a photo'" in crowd.verdicts[0].reason
    assert empty.verdicts[0].passed is True and empty.verdicts[0].probability > 0.9  # type: ignore[operator]
    assert (crowd.alignment, empty.alignment) == (0.0, 1.0)


def test_a_check_whose_subject_failed_counts_as_failed(critic: CLIPCheckCritic, monkeypatch: pytest.MonkeyPatch):
    # The image beats "a photo of a kitten" with "a photo" (no kitten), yet "red kitten" beats "kitten".
    texts = {TEMPLATE: [1.0, 0.0, 0.0], "a photo of a kitten": [0.0, 0.0, 1.0], "a photo of a red kitten": [0.7, 0.7, 0.0]}
    _stub(monkeypatch, critic, texts, [[1.0, 0.3, 0.0]])
    [r] = critic.review(["img"], CHECKS[:2], IDEA)
    kitten, red = r.verdicts
    assert kitten.passed is False and red.passed is True  # raw verdicts, as the critic saw them
    assert r.alignment == 0.0  # DSG: "red" presupposes the kitten, so it fails with it
    assert alignment([kitten, Verdict(2, True)], CHECKS[:2]) == 0.0


def test_count_must_beat_every_neighbour(critic: CLIPCheckCritic, monkeypatch: pytest.MonkeyPatch):
    texts = {"a photo of three apples": [1.0, 0.0, 0.0], "a photo of two apples": [0.0, 1.0, 0.0],
             "a photo of four apples": [0.0, 0.0, 1.0]}
    _stub(monkeypatch, critic, texts, [[1.0, 0.2, 0.2], [1.0, 0.2, 1.2]])
    three, four = critic.review(["a", "b"], [CHECKS[2]], IDEA)
    assert three.verdicts[0].passed is True
    assert four.verdicts[0].passed is False and "'a photo of four apples'" in four.verdicts[0].reason


# --- cost: forward passes, batching, the shared model ------------------------------------------------------------


def _count_passes(monkeypatch: pytest.MonkeyPatch, clip: object) -> dict[str, int]:
    passes = {"text": 0, "image": 0}
    for kind, attr in (("text", "get_text_features"), ("image", "get_image_features")):
        original = getattr(clip, attr)

        def counted(*args: object, _original=original, _kind=kind, **kwargs: object) -> object:
            passes[_kind] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(clip, attr, counted)
    return passes


def test_one_text_pass_and_one_pass_per_image_batch(critic: CLIPCheckCritic, monkeypatch: pytest.MonkeyPatch):
    passes = _count_passes(monkeypatch, critic.clip)
    embedded: list[list[str]] = []
    original = critic._scorer._embed_texts
    monkeypatch.setattr(critic._scorer, "_embed_texts", lambda ts: embedded.append(ts) or original(ts))
    checks = [*CHECKS, check("entity", "basket", id=7), check("absent", "dog", id=8)]  # "a photo" thrice
    reviews = critic.review(noise_images(3), checks, IDEA)
    assert passes == {"text": 1, "image": 1}
    assert [r.calls for r in reviews] == [2, 0, 0] and sum(r.calls for r in reviews) == 2
    [texts] = embedded
    assert len(texts) == len(set(texts)) and texts.count(TEMPLATE) == 1

    monkeypatch.setattr(scorer, "_IMAGE_BATCH", 2)  # 5 images in batches of 2: 3 image passes
    passes.update(text=0, image=0)
    reviews = critic.review(noise_images(5), checks, IDEA)
    assert passes == {"text": 1, "image": 3}
    assert [r.calls for r in reviews] == [2, 0, 1, 0, 1]


def test_a_batch_of_three_equals_one_by_one(critic: CLIPCheckCritic):
    images = noise_images(3, seed=11)
    batched = critic.review(images, CHECKS, IDEA)
    for im, b in zip(images, batched):
        [s] = critic.review([im], CHECKS, IDEA)
        assert [v.passed for v in s.verdicts] == [v.passed for v in b.verdicts]
        for v, w in zip(s.verdicts, b.verdicts):
            assert v.probability == pytest.approx(w.probability, abs=1e-4)


def test_shares_the_clip_critics_loaded_model(tiny_clip_dir: Path):
    a = CLIPCheckCritic(str(tiny_clip_dir), device="cpu").load()
    assert a.clip is CLIPCritic(str(tiny_clip_dir), device="cpu").load().clip
    assert a.name == "clip" and a.model == str(tiny_clip_dir)


def test_is_a_critic_and_takes_anything_shaped_like_a_check(critic: CLIPCheckCritic):
    from ideaforge.tools.critic import Critic

    assert isinstance(critic, Critic)
    plain: list[CheckLike] = [SimpleNamespace(id=1, kind="entity", subject="cat", value=None, object=None,
                                              question="", depends_on=[])]
    [r] = critic.review(noise_images(1), plain, "a cat")
    assert r.verdicts[0].passed is not None and math.isfinite(r.verdicts[0].probability)  # type: ignore[arg-type]
