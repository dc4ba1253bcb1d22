"""ideaforge tools: the diffusers wrapper, the CLIP critic, PNG metadata and the CLIP tokenizer.

`diffusion` (a package: one module per idea, `DiffusionTool` on top), `critic` (a package: thresholds, the critique,
`CLIPCritic`), `metadata` (A1111 parameters and the ideaforge record in PNGs) and `clip_tokenizer`. Each imports its
heavy dependencies (torch, diffusers, transformers, compel) lazily, so importing any of them is instant, and through
`_lazy`, so first imports and first loads are safe from any number of threads.

Example:
    >>> from ideaforge.tools.diffusion import GenerationParams
    >>> from ideaforge.tools.critic import default_threshold
    >>> GenerationParams(steps=4).steps, default_threshold("openai/clip-vit-base-patch16")
    (4, 30.0)
"""
