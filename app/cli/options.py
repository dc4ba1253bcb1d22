"""Command-line options shared by `generate`, `batch` and `eval`: one declaration, one help text each."""

from __future__ import annotations

import typer

Engine = typer.Option(None, "--engine", help="Prompt engine: auto, openai or rules.")
Style = typer.Option(None, "--style", help="Style preset (see `ideaforge styles`).")
LlmBaseUrl = typer.Option(None, "--llm-base-url", help="OpenAI-compatible server URL (Ollama, vLLM, LM Studio...).")
LlmModel = typer.Option(None, "--llm-model", help="LLM model name.")
LlmMethod = typer.Option(
    None, "--llm-method", help="Structured output: auto (default), json_schema, function_calling or json_mode."
)
LlmTimeout = typer.Option(None, "--llm-timeout", help="Seconds one LLM request may take in all (default 60).")
LlmMaxRetries = typer.Option(None, "--llm-max-retries", help="Retries of a failed LLM request (default 2).")
RequireLlm = typer.Option(None, "--require-llm", help="Fail (exit 1) instead of falling back to the rules engine.")
Model = typer.Option(None, "--model", help="Hub id, diffusers folder or .safetensors file.")
ClipModel = typer.Option(None, "--clip-model", help="CLIP critic: Hub id or folder.")
Steps = typer.Option(None, "--steps", help="Denoising steps (default: the model's profile).")
Guidance = typer.Option(None, "--guidance", help="Classifier-free guidance scale.")
Size = typer.Option(None, "--size", help="WIDTHxHEIGHT, multiples of 8.")
N = typer.Option(None, "--n", help="Images per attempt.")
Scheduler = typer.Option(None, "--scheduler", help="euler, euler_a, dpm++_2m, ddim, lcm, ...")
Lora = typer.Option([], "--lora", help="LoRA as ID_OR_PATH[:SCALE]; repeatable.")
Critique = typer.Option(None, "--critique/--no-critique", help="Check each image and repair what failed.")
Threshold = typer.Option(None, "--threshold", help="Share of checks that must pass, 0-1 (default 1: all).")
Critic = typer.Option(None, "--critic", help="Who checks the images: clip (default), vlm or vlm+clip.")
VlmBaseUrl = typer.Option(None, "--vlm-base-url", help="Vision LLM critic's OpenAI-compatible server URL.")
VlmModel = typer.Option(None, "--vlm-model", help="Vision LLM critic's model name (default gpt-4o-mini).")
Preference = typer.Option(None, "--preference", help="Preference (quality) model: Hub id or folder, e.g. PickScore.")
MaxImages = typer.Option(None, "--max-images", help="Most images the loop may make in all.")
MaxSeconds = typer.Option(None, "--max-seconds", help="No new round after this many seconds.")
MaxLlmCalls = typer.Option(None, "--max-llm-calls", help="Most LLM revisions; then only new seeds.")
MaxAttempts = typer.Option(None, "--max-attempts", help="Rounds at most (default 3).")
Candidates = typer.Option(None, "--candidates", help="Prompts per round (default 1).")
KeepSeed = typer.Option(None, "--keep-seed", help="Reuse the first seed in every round.")
Device = typer.Option(None, "--device", help="cuda, mps or cpu.")
Dtype = typer.Option(None, "--dtype", help="float16, bfloat16 or float32.")
AllowPickle = typer.Option(None, "--allow-pickle", help="Allow .ckpt/pickle checkpoints.")
NoSafetyChecker = typer.Option(False, "--no-safety-checker", help="Turn the safety checker off.")
Offload = typer.Option(None, "--offload", help="none, model, sequential or group (needs an accelerator).")
VaeSlicing = typer.Option(None, "--vae-slicing/--no-vae-slicing", help="Decode a batch one image at a time.")
VaeTiling = typer.Option(None, "--vae-tiling/--no-vae-tiling", help="Decode in tiles (default: from 1024 px).")
Compile = typer.Option(None, "--compile", help="torch.compile the denoiser (regional where supported).")
AttentionBackend = typer.Option(None, "--attention-backend", help="diffusers attention backend: native, flash, ...")
Cache = typer.Option(None, "--cache", help="first_block: cache acceleration for DiT models (FLUX).")
LayerwiseCasting = typer.Option(None, "--layerwise-casting", help="fp8 or fp8_e5m2: store weights in fp8.")
Family = typer.Option(
    None, "--family",
    help="Model family to write the prompt for: sd (default: tags), sdxl (tags and phrases), sd3, flux or generic "
    "(prose); or sd3-turbo, flux-schnell.",
)
