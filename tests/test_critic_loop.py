"""The whole loop on the real path: checklist -> langchain-openai request with the image -> verdicts -> targeted
repair -> pass, in the shapes world, with the `vlm` critic chosen by settings (as `--critic vlm` does)."""

from __future__ import annotations

import json

import pytest
from shapes_world import ShapesWorldGenerator
from vlm_server import Fault, VisionServer

from ideaforge import IdeaForge
from ideaforge.tools.metadata import read_record

IDEA = "a red circle, two blue squares and a yellow star, no triangles"


@pytest.fixture()
def server():
    with VisionServer() as s:
        yield s


def forge(tmp_path, url: str, **kw) -> IdeaForge:
    return IdeaForge(engine="rules", generator=ShapesWorldGenerator(), critic="vlm", vlm_base_url=url,
                     vlm_model="shapes-vlm", vlm_timeout=5, vlm_max_retries=0, out=str(tmp_path), **kw)


def test_failed_checks_are_repaired_until_every_check_passes(server, tmp_path) -> None:
    f = forge(tmp_path, server.url)
    passed_runs = 0
    for seed in range(6):
        result = f.run(IDEA, seed=seed, max_attempts=5)
        first = result.attempts[0]
        assert result.critic == "vlm"
        assert first.images[0].review is not None and first.images[0].review.critic == "vlm"
        by_id = {c.id: c for c in first.spec.checks}
        for k, later in enumerate(result.attempts[1:], start=1):
            if later.action == "repair":  # the repaired prompt leads with something an earlier image failed
                failed = {by_id[c].subject for a in result.attempts[:k] for c in a.failed if by_id[c].kind != "absent"}
                lead = later.spec.positive.split(", ")[0].lower()
                assert any(s.rstrip("s") in lead for s in failed), (failed, lead)
                assert later.spec.checks == first.spec.checks  # the idea's checklist stays
        best = result.best
        assert best.score == max(a.score for a in result.attempts)
        passed_runs += result.passed
        if result.passed:
            assert result.stopped.startswith("all checks passed")
    assert passed_runs >= 3  # the world drops shapes often; repair and seed search recover most ideas
    # every request carried the image, downscaled never: the world's 128x128 canvas
    assert server.requests and all(r.images == [(128, 128)] for r in server.requests)


def test_verdicts_are_in_the_png_record_and_the_json(server, tmp_path) -> None:
    result = forge(tmp_path, server.url).run(IDEA, seed=3, max_attempts=2)
    image = result.best.best_image()
    record = read_record(image.path)["ideaforge"]
    assert record["review"]["critic"] == "vlm"
    assert [v["check"] for v in record["review"]["verdicts"]] == [c["id"] for c in record["checks"]]
    dumped = json.loads(result.model_dump_json())
    assert dumped["attempts"][0]["images"][0]["review"]["verdicts"]
    assert dumped["spent"]["critic_calls"] >= 1 and dumped["spent"]["images"] == len(result.image_paths)


def test_a_failing_server_gets_one_line_warnings_not_a_crash(server, tmp_path) -> None:
    server.push(Fault.garbage(), Fault.garbage())  # the first image's reply and its repair round
    f = forge(tmp_path, server.url, critique=True)
    f._critics["vlm"] = f.critic_for("vlm").primary  # the VLM alone: its error must reach the loop as one line
    with pytest.raises(Exception) as info:
        f.run(IDEA, seed=1, max_attempts=1)
    assert "\n" not in str(info.value) and "unusable" in str(info.value)


def test_the_image_budget_bounds_the_run(server, tmp_path) -> None:
    result = forge(tmp_path, server.url).run("a red circle and five purple stars", seed=2, max_attempts=10,
                                             max_images=2)
    assert len(result.image_paths) <= 2
    assert result.passed or result.stopped in ("image budget (2) spent", "two rounds brought no improvement")


def test_a_threshold_above_one_is_refused_before_any_work(server, tmp_path) -> None:
    from ideaforge.errors import InputError

    f = forge(tmp_path, server.url)
    with pytest.raises(InputError, match="threshold 30 is above 1"):
        f.run(IDEA, threshold=30)
    assert server.requests == []


def test_vlm_without_a_server_says_how_to_set_one(tmp_path) -> None:
    from ideaforge.errors import InputError

    f = IdeaForge(engine="rules", generator=ShapesWorldGenerator(), critic="vlm", out=str(tmp_path))
    with pytest.raises(InputError, match="--vlm-base-url"):
        f.run(IDEA)


def test_a_dead_vlm_server_falls_back_to_clip_with_a_warning(tiny_clip_dir, tmp_path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = IdeaForge(engine="rules", generator=ShapesWorldGenerator(), critic="vlm",
                  vlm_base_url=f"http://127.0.0.1:{port}/v1", vlm_timeout=2, vlm_max_retries=0,
                  clip_model=str(tiny_clip_dir), out=str(tmp_path))
    result = f.run(IDEA, seed=1, max_attempts=2)
    reviews = [i.review for a in result.attempts for i in a.images]
    assert reviews and all(r.critic == "vlm (fallback clip)" for r in reviews)
    assert all(r.warnings[0].startswith("the vlm critic failed (") for r in reviews)
    assert all(v.critic == "clip" for v in reviews[0].verdicts)
    record = read_record(result.best_image_path)["ideaforge"]
    assert any(w.startswith("the vlm critic failed") for w in record["warnings"])


def test_clip_and_vlm_plus_clip_run_with_the_tiny_models(server, tiny_clip_dir, tmp_path) -> None:
    for critic in ("clip", "vlm+clip"):
        f = IdeaForge(engine="rules", generator=ShapesWorldGenerator(), critic=critic, vlm_base_url=server.url,
                      clip_model=str(tiny_clip_dir), out=str(tmp_path / critic.replace("+", "-")))
        result = f.run("a red kitten next to a blue ball", seed=4, max_attempts=2)
        review = result.attempts[0].images[0].review
        assert review.critic == critic
        kinds = {c.id: c.kind for c in result.attempts[0].spec.checks}
        unverified = {kinds[v.check] for v in review.verdicts if v.passed is None}
        if critic == "clip":
            assert unverified <= {"relation", "text"} and "relation" in unverified  # CLIP does not guess those
        else:
            assert not unverified  # the VLM judged the relation; CLIP the rest where the VLM could not
        assert review.quality is not None  # CLIP's idea score ranks images that pass as many checks


def test_a_rounds_candidates_are_checked_at_once(tmp_path) -> None:
    with VisionServer(latency=0.4) as slow:
        result = forge(tmp_path, slow.url).run(IDEA, seed=5, max_attempts=1, candidates=3)
        spans = sorted((r.started, r.ended) for r in slow.requests)
    assert [a.candidate for a in result.attempts] == [1, 2, 3]  # in order, whatever finished first
    assert len(spans) == 3 and spans[1][0] < spans[0][1] and spans[2][0] < spans[1][1]  # the requests overlapped


def test_a_preference_model_gives_the_quality_score(server, tiny_clip_dir, tmp_path) -> None:
    from ideaforge.tools.critic import PreferenceScorer

    f = IdeaForge(engine="rules", generator=ShapesWorldGenerator(), critic="vlm", vlm_base_url=server.url,
                  preference=str(tiny_clip_dir), out=str(tmp_path))
    result = f.run(IDEA, seed=2, max_attempts=1)
    image = result.attempts[0].images[0]
    from PIL import Image

    with Image.open(image.path) as im:
        [expected] = PreferenceScorer(str(tiny_clip_dir)).score([im.convert("RGB")], result.attempts[0].spec.idea_en)
    assert image.review.quality == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("faults", [
    [Fault.error(500)], [Fault.garbage(), Fault.garbage()], [Fault.huge(1.5)], [Fault.slow(5)],
], ids=["500", "garbage", "huge", "timeout"])
def test_each_server_fault_ends_in_a_usable_result_with_a_warning(faults, server, tiny_clip_dir, tmp_path) -> None:
    import time

    server.push(*faults)
    f = IdeaForge(engine="rules", generator=ShapesWorldGenerator(), critic="vlm", vlm_base_url=server.url,
                  vlm_timeout=1, vlm_max_retries=0, clip_model=str(tiny_clip_dir), out=str(tmp_path))
    started = time.monotonic()
    result = f.run(IDEA, seed=6, max_attempts=1)
    assert time.monotonic() - started < 30  # bounded: no wait beyond the timeout and the fallback
    review = result.attempts[0].images[0].review
    assert result.best_image_path and review.critic == "vlm (fallback clip)" and review.verdicts
    [warning] = [w for w in review.warnings if w.startswith("the vlm critic failed (")]
    assert "\n" not in warning and len(warning) < 400
