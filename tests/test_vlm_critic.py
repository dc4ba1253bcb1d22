"""The vision-LLM critic through the real langchain-openai client against a loopback server that looks at the
pixels (`vlm_server.py`), and the shapes world it looks at (`shapes_world.py`)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import SimpleNamespace as R

import pytest
from PIL import Image
from shapes_world import COLOURS, SHAPES, ShapesWorldGenerator, answer, detect, parse, render, weighted
from vlm_server import Fault, VisionServer

from ideaforge.errors import Cancelled, InputError, LLMError
from ideaforge.tools.critic.verdicts import Review, alignment
from ideaforge.tools.critic.vlm import VLMCritic, yes_probabilities

KEY = "sk-fake-vlm-key-0123456789abcdefXYZ"


def check(id: int, kind: str, subject: str, question: str, value: str | None = None, obj: str | None = None,
          depends_on: tuple[int, ...] = ()) -> R:
    return R(id=id, kind=kind, subject=subject, value=value, object=obj, question=question,
             depends_on=list(depends_on))


CHECKS = [
    check(1, "entity", "circle", "Is there a circle?"),
    check(2, "attribute", "circle", "Is the circle red?", "red", depends_on=(1,)),
    check(3, "entity", "square", "Is there a square?"),
    check(4, "attribute", "square", "Is the square blue?", "blue", depends_on=(3,)),
    check(5, "absent", "triangle", "Is the image free of any triangle?"),
]
PROMPT = "a red circle, a blue square"


def seed_where(prompt: str, want: object, negative: str = "") -> int:
    """The first seed whose image's drawn (colour, shape, count) set equals `want`."""
    for seed in range(500):
        _, drawn, _ = render(prompt, negative, seed)
        if {(d.colour, d.shape, d.count) for d in drawn} == want:
            return seed
    raise AssertionError(f"no seed draws {want}")


def image(prompt: str = PROMPT, seed: int | None = None, want: object = None) -> Image.Image:
    seed = seed_where(prompt, want) if want is not None else (seed or 0)
    return render(prompt, "", seed)[0]


def critic(server: VisionServer, **kw: object) -> VLMCritic:
    kw.setdefault("timeout", 5.0)
    return VLMCritic(server.url, "fake-vlm", KEY, **kw)  # type: ignore[arg-type]


# -- the world --------------------------------------------------------------------------------------------------------
def test_world_is_reproducible_per_seed_and_detect_recovers_what_was_drawn() -> None:
    prompt = "two red circles, a blue square, (green triangle:1.2), a yellow star, purple star, orange squares"
    for seed in range(40):
        a, drawn, _ = render(prompt, "", seed)
        b, again, _ = render(prompt, "", seed)
        assert a.tobytes() == b.tobytes() and drawn == again
        assert sorted((d.colour, d.shape, d.count) for d in detect(a)) == sorted(
            (d.colour, d.shape, d.count) for d in drawn)
    assert len({render(prompt, "", s)[0].tobytes() for s in range(5)}) == 5


def test_world_physics() -> None:
    def rate(prompt: str, ok: object, negative: str = "", n: int = 300) -> float:
        return sum(bool(ok(render(prompt, negative, s)[1])) for s in range(n)) / n  # type: ignore[operator]

    def has(shape: str, colour: str | None = None) -> object:
        return lambda drawn: any(d.shape == shape and (colour is None or d.colour == colour) for d in drawn)

    four = "a red circle, a blue square, a green triangle, a yellow star"
    assert 0.04 < 1 - rate(four, has("circle")) < 0.18  # the first object: dropped ~10%
    assert 1 - rate(four, has("star", "yellow")) > 0.7  # the fourth: ~85%
    assert 1 - rate("a red circle, a blue square, a green triangle, (yellow star:1.5)", has("star", "yellow")) < 0.2
    count = lambda n: lambda drawn: any(d.shape == "circle" and d.count == n for d in drawn)  # noqa: E731
    drawn_three = rate("three red circles", lambda d: any(x.shape == "circle" for x in d))
    assert 0.4 < rate("three red circles", count(3)) / drawn_three < 0.8  # wrong ~40% of the time
    for spelled in ("exactly 3 red circles", "3 (three) red circles", "(three red circles:1.2)"):
        assert rate(spelled, lambda d: any(x.shape == "circle" and x.count not in (0, 3) for x in d)) == 0
    assert rate("a red circle, no triangles", has("triangle", None)) > 0.6  # negation is not understood
    grey = lambda drawn: any(d.distractor for d in drawn)  # noqa: E731
    assert 0.2 < rate("a red circle", grey) < 0.4
    assert rate("a red circle", grey, negative="triangles, stars") == 0


def test_prompt_reading() -> None:
    assert weighted("((red circle)), [blue square]")[0] == "red circle, blue square"
    objs = parse("(red circle:1.3), blue square++, [green star], (yellow triangle)1.4, 3 (three) purple circles")
    assert [(o.colour, o.shape, round(o.weight, 2)) for o in objs] == [
        ("red", "circle", 1.3), ("blue", "square", 1.21), ("green", "star", 0.91), ("yellow", "triangle", 1.4),
        ("purple", "circle", 1.1)]
    assert objs[-1].count == 3 and objs[-1].spelled
    assert [(o.shape, o.count) for o in parse("two stars, an orange square, well-lit")] == [("star", 2), ("square", 1)]


def test_generator_call_shape() -> None:
    gen = ShapesWorldGenerator(seed=7)
    steps: list[object] = []
    out = gen.generate([R(positive=PROMPT, negative="", seed=5), R(positive="a star", negative="", seed=None)],
                       R(n=2, steps=None, guidance=None), on_step=steps.append)
    assert [i.seed for i in out[:2]] == [5, 6] and len(out) == 4 and len(steps) == 2
    assert all(i.error is None and not i.flagged and i.image.size == (128, 128) == (i.width, i.height) for i in out)
    assert [i.request_index for i in out] == [0, 0, 1, 1]
    again = ShapesWorldGenerator(seed=7).generate([R(positive="a star", negative="", seed=None)], R(n=1))
    assert again[0].seed == out[2].seed
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        gen.generate([R(positive=PROMPT, negative="", seed=1)], R(n=1), cancel=stop)


def test_answer_judges_each_kind() -> None:
    img = image("a red circle, two blue squares", want={("red", "circle", 1), ("blue", "square", 2)})
    seen = detect(img)
    red = next(d for d in seen if d.colour == "red").centres[0]
    blue = next(d for d in seen if d.colour == "blue").centres
    left = "yes" if any(red[0] < b[0] for b in blue) else "no"
    for question, expected in [
        ("Is there a red circle?", "yes"), ("Is there a star?", "no"), ("Are there blue squares?", "yes"),
        ("Is the circle red?", "yes"), ("Is the circle blue?", "no"), ("Are there exactly two blue squares?", "yes"),
        ("Are there exactly three blue squares?", "no"), ("Is there exactly one red circle?", "yes"),
        ("Is the image free of any triangle?", "yes"), ("Is the image free of any squares?", "no"),
        ("Is there any square in the image?", "yes"), ("Is the red circle to the left of the blue square?", left),
        ('Does the image show the text "OPEN"?', "no"), ("Is there a kitten?", "no"),
    ]:
        assert answer(question, seen)[0] == expected, question
    assert answer({"kind": "count", "subject": "blue squares", "value": "2"}, seen)[0] == "yes"
    assert answer(check(1, "absent", "star", ""), seen) == ("yes", "no star; I see 2 blue squares, 1 red circle")


# -- the critic -------------------------------------------------------------------------------------------------------
def test_verdicts_follow_the_pixels_and_a_missing_shape_fails_its_checks() -> None:
    with_both = image(want={("red", "circle", 1), ("blue", "square", 1)})
    no_square = image(want={("red", "circle", 1)})
    with VisionServer() as server:
        full, missing = critic(server).review([with_both, no_square], CHECKS, "a red circle and a blue square")
    assert [v.passed for v in full.verdicts] == [True] * 5 and full.alignment == 1.0
    assert [v.passed for v in missing.verdicts] == [True, True, False, False, True]
    assert missing.alignment == pytest.approx(3 / 5) == alignment(missing.verdicts, CHECKS)
    assert full.critic == missing.critic == "vlm" and full.calls == 1 and full.warnings == []
    assert all(v.critic == "vlm" and v.reason for v in full.verdicts)
    # DSG: a check whose parent failed counts as failed, whatever the VLM said about it.
    orphan = [check(1, "entity", "square", "Is there a square?"),
              check(2, "attribute", "circle", "Is the circle red?", "red", depends_on=(1,))]
    with VisionServer() as server:
        [r] = critic(server).review([no_square], orphan, "x")
    assert [v.passed for v in r.verdicts] == [False, True] and r.alignment == 0.0


def test_logprobs_give_p_yes_and_absent_checks_are_asked_the_positive_way() -> None:
    img = image(want={("red", "circle", 1), ("blue", "square", 1)})
    with VisionServer(confidence=0.8) as server:
        [r] = critic(server).review([img], [*CHECKS, check(6, "entity", "star", "Is there a star?")], "x")
        asked = server.requests[0]
    assert asked.logprobs and asked.checks[5] == "Is there any triangle in the image?"
    probs = [v.probability for v in r.verdicts]
    assert probs[:5] == pytest.approx([0.8] * 5, abs=1e-3)  # absent: "no triangle" -> P(yes, passes) 0.8
    assert probs[5] == pytest.approx(0.2, abs=1e-3) and r.verdicts[5].passed is False
    assert yes_probabilities(None, 2) == [None, None]


def test_the_image_reaches_the_server_downscaled_never_upscaled() -> None:
    wide = Image.new("RGB", (300, 150), "white")
    with VisionServer() as server:
        critic(server, max_side=96).review([image(), wide], CHECKS[:1], "x")
        critic(server, max_side=768).review([image()], CHECKS[:1], "x")
        sizes = sorted(r.images[0] for r in server.requests)
    assert sizes == [(96, 48), (96, 96), (128, 128)]


@pytest.mark.parametrize("method, form", [("json_schema", "json_schema"), ("function_calling", "tools"),
                                          ("json_mode", "json_object")])
def test_each_structured_output_method(method: str, form: str) -> None:
    img = image(want={("red", "circle", 1), ("blue", "square", 1)})
    with VisionServer() as server:
        [r] = critic(server, method=method).review([img], CHECKS, "x")
        body = server.requests[0].body
    assert server.requests[0].form == form and [v.passed for v in r.verdicts] == [True] * 5
    assert body["temperature"] == 0 and "JSON" in body["messages"][0]["content"]
    assert (r.verdicts[0].probability is None) == (method == "function_calling")  # tool arguments carry no logprobs


def test_auto_falls_back_from_a_json_schema_refusal_and_remembers() -> None:
    with VisionServer(refuse={"json_schema"}) as server:
        c = critic(server)
        [r] = c.review([image()], CHECKS, "x")
        c.review([image()], CHECKS, "x")
        forms = [q.form for q in server.requests]
    assert forms == ["json_schema", "json_object", "json_object"] and r.calls == 2
    assert r.verdicts[0].passed is not None and r.warnings == []


def test_a_logprobs_refusal_is_retried_without_and_remembered() -> None:
    with VisionServer(refuse={"logprobs"}) as server:
        c = critic(server)
        [r] = c.review([image()], CHECKS, "x")
        c.review([image()], CHECKS, "x")
        sent = [(q.form, q.logprobs, q.status) for q in server.requests]
    assert sent == [("json_schema", True, 400), ("json_schema", False, 200), ("json_schema", False, 200)]
    assert all(v.probability is None for v in r.verdicts) and r.verdicts[0].passed is not None


# -- faults -----------------------------------------------------------------------------------------------------------
def test_a_500_is_retried() -> None:
    with VisionServer() as server:
        server.push(Fault.error(500))
        [r] = critic(server).review([image()], CHECKS, "x")
    assert r.calls == 2 and r.verdicts[0].passed is not None


@pytest.mark.parametrize("fault, words", [
    ([Fault.error(500)] * 3, "500"),
    ([Fault.error(503)] * 3, "503"),
    ([Fault.huge(1.5)], "over 1,000,000 bytes"),
    ([Fault.garbage(), Fault.garbage("{not json")], "unusable twice"),
])
def test_faults_that_end_in_an_llm_error_with_one_line(fault: list[Fault], words: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with VisionServer() as server:
        server.push(*fault)
        with pytest.raises(LLMError) as err:
            critic(server, max_retries=2).review([image()], CHECKS, "x")
        assert server.requests[0].headers.get("authorization") == f"Bearer {KEY}"  # the key did reach the server
    message = str(err.value)
    assert words in message and "\n" not in message and len(message) < 400
    assert KEY not in message and KEY not in caplog.text


def test_a_slow_server_times_out_within_the_bound() -> None:
    with VisionServer() as server:
        server.push(Fault.slow(30), Fault.slow(30))
        t0 = time.monotonic()
        with pytest.raises(LLMError, match="after 2 tries") as err:
            critic(server, timeout=0.5, max_retries=1).review([image()], CHECKS, "x")
        took = time.monotonic() - t0
    assert took < 3.0 and "\n" not in str(err.value) and KEY not in str(err.value)


def test_a_dead_server_raises_after_the_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = VLMCritic(f"http://127.0.0.1:{port}/v1", "fake-vlm", KEY, timeout=1.0, max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="after 2 tries") as err:
        dead.review([image()], CHECKS, "x")
    assert time.monotonic() - t0 < 3.0 and KEY not in str(err.value) and KEY not in repr(dead)


def test_garbage_gets_one_repair_round() -> None:
    with VisionServer() as server:
        server.push(Fault.garbage())
        [r] = critic(server).review([image()], CHECKS, "x")
        repair = server.requests[1].body["messages"][-1]["content"]
    assert r.calls == 2 and r.verdicts[0].passed is not None and r.warnings == []
    assert "could not be used" in repair and "mostly yes" in repair


def test_ids_never_asked_are_dropped_with_a_warning() -> None:
    with VisionServer() as server:
        server.push(Fault.unknown_ids())
        [r] = critic(server).review([image()], CHECKS, "x")
    assert [v.check for v in r.verdicts] == [1, 2, 3, 4, 5] and r.calls == 1
    assert r.warnings == ["the VLM answered check id(s) never asked (98, 99); ignored"]


def test_missing_ids_are_asked_again_alone_then_left_unverified() -> None:
    with VisionServer() as server:
        server.push(Fault.missing(2, 4))
        [r] = critic(server).review([image()], CHECKS, "x")
        assert sorted(server.requests[1].checks) == [2, 4]
    assert r.calls == 2 and all(v.passed is not None for v in r.verdicts) and r.warnings == []
    with VisionServer() as server:
        server.push(Fault.missing(2, 4), Fault.missing(4))
        [r] = critic(server).review([image()], CHECKS, "x")
    assert [v.passed is None for v in r.verdicts] == [False, False, False, True, False]
    assert r.warnings == ["the VLM did not answer check(s) 4; left unverified"]
    assert isinstance(r, Review) and r.alignment is not None


def test_images_are_reviewed_concurrently() -> None:
    images = [render(PROMPT, "", s)[0] for s in range(4)]
    with VisionServer(latency=0.4) as server:
        t0 = time.monotonic()
        reviews = critic(server, concurrency=4).review(images, CHECKS, "x")
        took = time.monotonic() - t0
        spans = [(q.started, q.ended) for q in server.requests]
    assert len(reviews) == len(spans) == 4 and took < 1.4
    assert max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans) >= 2  # requests overlapped
    with VisionServer(latency=0.2) as server:
        critic(server, concurrency=1).review(images[:2], CHECKS, "x")
        (a0, a1), (b0, _) = sorted((q.started, q.ended) for q in server.requests)
    assert b0 >= a1  # one at a time


def test_bad_arguments_and_empty_inputs() -> None:
    with pytest.raises(InputError, match="method"):
        VLMCritic("http://127.0.0.1:9/v1", "m", method="xml")
    with pytest.raises(InputError, match="max_side"):
        VLMCritic("http://127.0.0.1:9/v1", "m", max_side=0)
    c = VLMCritic("http://127.0.0.1:9/v1", "m")
    assert c.review([], CHECKS, "x") == []
    with pytest.raises(InputError, match="PIL"):
        c.review(["not an image"], CHECKS, "x")
    [r] = c.review([image()], [], "x")
    assert r.verdicts == [] and r.alignment is None and r.calls == 0


def test_world_draws_the_whole_vocabulary() -> None:
    prompt = ", ".join(f"(a {c} {s}:1.5)" for c, s in zip(COLOURS, SHAPES * 2))
    img, drawn, _ = render(prompt, "triangles, stars", 0)
    assert {(d.colour, d.shape) for d in detect(img)} == {(d.colour, d.shape) for d in drawn}
    assert len(drawn) == len(COLOURS)
