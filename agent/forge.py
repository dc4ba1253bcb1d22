"""`IdeaForge`: the one object that turns ideas into images. Configure once, call `run` many times."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

from ideaforge.agent import critics
from ideaforge.agent.attempt import Event, OnEvent, Plan, make_attempt
from ideaforge.agent.chain import PromptChain, describe
from ideaforge.agent.critics import build_critic, is_checklist_critic
from ideaforge.agent.loop import LoopOptions, critic_loop
from ideaforge.agent.models import Attempt, PromptSpec, RunResult
from ideaforge.agent.record import PngRecord
from ideaforge.agent.repair import repair_rules
from ideaforge.agent.request import RunOptions, parse_size
from ideaforge.agent.rules import revise_rules
from ideaforge.agent.settings import Settings, load_settings
from ideaforge.errors import InputError

# Settings that select loaded models; the rest may change from one run to the next.
_MODEL_KEYS = ("model", "clip_model", "device", "dtype", "allow_pickle", "safety_checker", "offload", "vae_slicing",
               "vae_tiling", "compile", "attention_backend", "cache_acceleration", "layerwise_casting", "preference")


class IdeaForge:
    """Idea in, best image out: prompt chain, diffusion, CLIP critic, revision.

    Every keyword not given comes from the settings (`IDEAFORGE_*` environment, then defaults). The prompt chain,
    generator and scorer can be injected; the defaults are the real LangChain chain, `ideaforge.tools.diffusion.DiffusionTool`
    and `ideaforge.tools.critic.CLIPCritic`, loaded on first use and cached.

    Example:
        >>> from ideaforge import IdeaForge
        >>> forge = IdeaForge(model="path/to/sd-folder", steps=2, size="64x64")  # doctest: +SKIP
        >>> result = forge.run("a red kitten in a basket", seed=7)  # doctest: +SKIP
        >>> result.best.score, result.best_image_path  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        chain: PromptChain | None = None,
        generator: Any = None,
        scorer: Any = None,
        loras: list[str] | tuple[str, ...] = (),
        on_event: OnEvent | None = None,
        **settings: Any,
    ) -> None:
        self.settings = load_settings(**settings)  # once: a run's options go through `RunOptions`, not the env
        self.loras = list(loras)
        self.on_event = on_event
        self._chain = chain
        self._generator = generator
        self._scorer = scorer
        self._lock = threading.Lock()
        self._critics: dict[str, Any] = {}
        self._idea_scorer: Any = None
        self._counting_with_model = False

    @classmethod
    def from_settings(cls, settings: Settings, **components: Any) -> IdeaForge:
        """A forge with these resolved settings as they are (no environment read), e.g. one per worker thread
        sharing another forge's settings; `components` are `__init__`'s chain, generator, scorer, loras, on_event."""
        forge = cls(**components)
        forge.settings = settings
        return forge

    # -- components, loaded lazily ------------------------------------------------------------------------
    @property
    def chain(self) -> PromptChain:
        if self._chain is None:
            self._chain = PromptChain(self.settings)
        return self._chain

    @property
    def generator(self) -> Any:
        with self._lock:
            if self._generator is None:
                from ideaforge.tools.diffusion import DiffusionTool, parse_lora

                s = self.settings
                self._generator = DiffusionTool(
                    s.model,
                    device=s.device,
                    dtype=s.dtype,
                    loras=[parse_lora(x) for x in self.loras],
                    safety_checker=s.safety_checker,
                    allow_pickle=s.allow_pickle,
                    offload=s.offload,
                    vae_slicing=s.vae_slicing,
                    vae_tiling=s.vae_tiling,
                    compile=s.compile,
                    attention_backend=s.attention_backend,
                    cache=s.cache_acceleration,
                    layerwise_casting=s.layerwise_casting,
                ).load()
            return self._generator

    @property
    def scorer(self) -> Any:
        """The critic of the configured `critic` setting (or the injected scorer/critic)."""
        return self.critic_for(self.settings.critic)

    @property
    def idea_scorer(self) -> Any:
        """A scorer with one CLIP score per image and per element (`score_image`): the injected one if it has
        `.score`, else the CLIP critic of `clip_model`, loaded once."""
        with self._lock:
            if self._scorer is not None and callable(getattr(self._scorer, "score", None)):
                return self._scorer
            if self._idea_scorer is None:
                from ideaforge.tools.critic import CLIPCritic

                self._idea_scorer = CLIPCritic(self.settings.clip_model, device=self.settings.device).load()
            return self._idea_scorer

    def critic_for(self, name: str) -> Any:
        """The checklist critic called `name` (clip, vlm, vlm+clip), built once; an injected scorer wins."""
        with self._lock:
            if self._scorer is not None:
                return self._scorer
            if name not in self._critics:
                self._critics[name] = build_critic(self.settings.model_copy(update={"critic": name}))
            return self._critics[name]

    # -- entry points -------------------------------------------------------------------------------------
    def optimize(self, idea: str, *, style: str | None = None, family: Any = None) -> PromptSpec:
        """Only the prompt stage: idea -> `PromptSpec`, written for `family` without loading any model.

        `family` is sd, sdxl, sd3, flux or generic (or sd3-turbo, flux-schnell); None: the loaded model's, if a
        model is loaded already, else sd.

        Example:
            >>> IdeaForge(engine="rules").optimize("a red kitten", family="flux").negative  # doctest: +SKIP
            ''
        """
        if family is None and self._generator is not None:
            family = getattr(self._generator, "family", None)
        if family is None:  # the configured model's family from its files, without loading it
            from ideaforge.tools.diffusion import family_of_model

            family = family_of_model(self.settings.model)
        return self.chain.optimize(idea, style=style, family=family)

    def run(
        self,
        idea: str,
        *,
        spec: PromptSpec | None = None,
        on_event: OnEvent | None = None,
        cancel: threading.Event | None = None,
        tags: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> RunResult:
        """Idea -> best image, with every attempt recorded.

        Per-run overrides: steps, guidance, size, seed, n, scheduler, style, critique, threshold, max_attempts,
        candidates, keep_seed, out, init_image, strength. Bad values raise `InputError` before any model loads.
        `tags` adds keys to every image's PNG record (`ideaforge batch` marks its images this way).
        """
        emit = on_event or self.on_event or (lambda e: None)
        plan = self._plan(overrides)
        plan.tags = dict(tags or {})
        run = plan.settings
        scorer = self.critic_for(run.critic) if run.critique else None  # builds, loads nothing: errors come first
        threshold = _threshold(run.threshold, scorer)
        if spec is None:
            emit(Event("prompt", message="optimizing the prompt"))
            t0 = time.perf_counter()
            # The prompt is written for the loaded model's family (`DiffusionTool.family`; a generator without one: sd).
            spec = self.chain.optimize(idea, style=run.style, family=getattr(self.generator, "family", None))
            prompt_seconds = time.perf_counter() - t0
        else:
            prompt_seconds = 0.0
        emit(Event("prompt", message=f"prompt ready ({spec.engine})", data={"spec": spec.model_dump()}))
        generator = self.generator
        if getattr(generator, "tokenizer", None) is not None and not self._counting_with_model:
            # Count with the model's own tokenizer, but a copy: the pipeline encodes with the original in
            # another thread (batch, Streamlit sessions), and fast tokenizers are not thread-safe.
            from ideaforge.tools.clip_tokenizer import counting_copy

            self.chain.use_tokenizer(counting_copy(generator.tokenizer))
            self._counting_with_model = True
        times = {"prompt": prompt_seconds}
        llm_calls = [1 if spec.engine == "openai" and spec.fallback is None else 0]

        def produce(round_no: int, candidate: int, cand: PromptSpec, seed: int) -> Attempt:
            return make_attempt(round_no, candidate, cand, seed, plan, generator, scorer, emit, cancel, times)

        def revise(best: Attempt, attempts: list[Attempt], how_many: int) -> list[PromptSpec]:
            emit(Event("revise", round=best.round, message=best.critique or "revising"))
            t0 = time.perf_counter()
            specs = self._revise(best, attempts, how_many)
            llm_calls[0] += sum(1 for s in specs if s.engine == "openai" and s is not best.spec)
            times["prompt"] = time.perf_counter() - t0
            return specs

        options = LoopOptions(
            max_attempts=run.max_attempts if scorer else 1,
            candidates=run.candidates,
            threshold=threshold,
            seed=plan.seed,
            keep_seed=run.keep_seed,
            images_per_attempt=run.n,
            max_images=run.max_images,
            max_seconds=run.max_seconds,
            max_llm_calls=run.max_llm_calls,
            llm_calls=lambda: llm_calls[0],
            concurrent=scorer is not None and run.critic != "clip" and is_checklist_critic(scorer),
        )
        result = critic_loop(spec, produce=produce, revise=revise, options=options)
        result.idea = spec.idea
        result.critic = (run.critic if is_checklist_critic(scorer) else "clip-idea") if scorer is not None else None
        emit(Event("done", message=result.stopped, data={"best": result.best_image_path}))
        return result

    def check(self, **overrides: Any) -> None:
        """Validate per-run options (size, steps, seed, ...) without loading any model; raises `InputError`."""
        self._plan(dict(overrides))

    async def arun(self, idea: str, **kwargs: Any) -> RunResult:
        """`run` in a worker thread, for async callers."""
        return await asyncio.to_thread(self.run, idea, **kwargs)

    def refine(self, previous: RunResult | PromptSpec, request: str, **overrides: Any) -> RunResult:
        """A follow-up on an earlier result ("make it night", "more like a watercolor")."""
        base = previous.spec if isinstance(previous, RunResult) else previous
        if base is None:
            raise InputError("there is no earlier prompt to refine; run an idea first")
        spec = self.chain.refine(base, request)
        return self.run(spec.idea, spec=spec, **overrides)

    def reproduce(self, image: str | Path, **overrides: Any) -> RunResult:
        """Make an image again from the record in its PNG: the same prompts, seed, steps, guidance, size and
        scheduler, with no critic rounds. `overrides` change any of them (e.g. `seed=8` for a variation).

        Build the forge with the record's model (`IdeaForge(model=PngRecord.from_png(path).model)`) for the same
        pixels; with another model or other LoRAs the result says so in its warnings.

        Raises:
            InputError: the file holds no readable ideaforge record, or an override is invalid.
        """
        record = PngRecord.from_png(image)
        options: dict[str, Any] = {
            "steps": record.steps, "guidance": record.guidance, "size": record.size, "scheduler": record.scheduler,
            "seed": record.seed, "n": 1, "critique": False,
        }
        options.update({k: v for k, v in overrides.items() if v is not None})
        result = self.run(record.idea, spec=record.spec(), **{k: v for k, v in options.items() if v is not None})
        if record.model and record.model != self.settings.model:
            result.warnings.append(f"reproduced with model {self.settings.model!r}; the image was made with {record.model!r}")
        if record.loras != list(self.loras):
            result.warnings.append(f"reproduced with LoRAs {self.loras}; the image was made with {record.loras}")
        return result

    # -- the pieces ----------------------------------------------------------------------------------------
    def _plan(self, overrides: dict[str, Any]) -> Plan:
        """All per-run values validated in one place (`RunOptions`), before anything expensive."""
        from ideaforge.tools.diffusion import GenerationParams

        for key in overrides:
            if key in _MODEL_KEYS:
                raise InputError(f"{key!r} selects a loaded model; pass it to IdeaForge(...) rather than run()")
        options = RunOptions.parse(**overrides).given()
        extra = {k: options.pop(k) for k in ("seed", "init_image", "strength") if k in options}
        s = self.settings.model_copy(update=options)  # each value was validated by its `RunOptions` type
        size = parse_size(s.size) if s.size else None
        gen = GenerationParams(
            steps=s.steps,
            guidance=s.guidance,
            width=size[0] if size else None,
            height=size[1] if size else None,
            scheduler=s.scheduler,
            n=s.n,
            strength=extra.get("strength", 0.75),
            init_image=extra.get("init_image"),
        )
        _check_writable(Path(s.out))
        seed = extra.get("seed")
        return Plan(s, seed if seed is not None else random.randrange(2**32), gen, loras=list(self.loras))

    def _revise(self, best: Attempt, attempts: list[Attempt], how_many: int) -> list[PromptSpec]:
        """New prompts for what the best attempt missed: its failed checks, or (scorers) its weak elements."""
        spec = best.spec

        def offline() -> PromptSpec:
            if best.failed:
                return repair_rules(spec, best.failed, self.chain.tokenizer)
            return revise_rules(spec, best.weak or spec.elements[:1], self.chain.tokenizer)

        if self.chain.engine == "rules":
            return [offline()] * how_many
        history = "\n".join(_history_line(a) for a in attempts)
        out = []
        for _ in range(how_many):
            try:
                new = self.chain.revise(spec, history, best.critique or "")
                out.append(new.model_copy(update={"checks": spec.checks}) if spec.checks else new)
            except Exception as exc:  # the LLM failed: revise offline rather than stop the loop
                fallback = offline()
                why = describe(exc)
                fallback.warnings.append(f"the LLM revision failed ({why}); revised with the rules engine")
                out.append(fallback)
        return out


def _history_line(attempt: Attempt) -> str:
    """One attempt as the LLM revision prompt shows it (OPT2I-style): its score, what failed, the prompts."""
    image = attempt.best_image()
    line = f"- round {attempt.round}, candidate {attempt.candidate}, seed {attempt.seed}: "
    if image is not None and image.review is not None:
        r = image.review
        line += f"{r.passed} of {r.judged} checks passed"
        if r.quality is not None:
            line += f", quality {r.quality:.2f}"
        failed = critics.failed_lines(attempt.spec, r)
        line += "".join(f"\n  failed {f}" for f in failed[:12])
    else:
        score = attempt.score if attempt.score is not None else "n/a"
        elements = image.scores.elements if image is not None and image.scores is not None else {}
        line += f"score {score}; elements: {', '.join(f'{k} {v:.1f}' for k, v in elements.items())}"
    return line + f"\n  positive: {attempt.spec.positive}\n  negative: {attempt.spec.negative}"


def _threshold(given: float | None, scorer: Any) -> float | None:
    """The score that ends the loop: for a checklist critic the share of checks (default all), else the scorer's."""
    if scorer is None:
        return None
    if is_checklist_critic(scorer):
        if given is not None and given > 1:
            raise InputError(
                f"threshold {given:g} is above 1: with a checklist critic it is the share of checks that must pass; "
                "use e.g. --threshold 0.8 (or leave it out: all checks)"
            )
        return 1.0 if given is None else given
    return given if given is not None else scorer.threshold


def _check_writable(folder: Path) -> None:
    """Fail before any work when images could not be saved (rather than after minutes of generation)."""
    import os
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(
            f"output folder {str(folder)!r} is not writable ({exc.strerror or exc}); pass --out to a folder you can write"
        ) from None


def run(idea: str, **kwargs: Any) -> RunResult:
    """One-shot shortcut: `IdeaForge(**settings).run(idea)`; run-level keywords are passed through.

    Example:
        >>> import ideaforge
        >>> result = ideaforge.agent.run("cozy cabin at night", model="path/to/sd", critique=False)  # doctest: +SKIP
    """
    run_keys = {"seed", "init_image", "strength", "spec", "on_event", "cancel"}
    run_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in run_keys}
    return IdeaForge(**kwargs).run(idea, **run_kwargs)
