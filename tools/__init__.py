"""ideaforge tools: the diffusers wrapper, the CLIP critic, PNG metadata and LangChain tools.

Each module is self-contained and imports its heavy dependencies (torch, diffusers, transformers) lazily.
"""
