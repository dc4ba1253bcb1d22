"""The Stable Diffusion tool (being split into one module per idea; see tool.py)."""

from ideaforge.tools.diffusion.tool import *  # noqa: F403
from ideaforge.tools.diffusion.tool import _data, _load_pipeline  # noqa: F401
