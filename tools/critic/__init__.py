"""The CLIP critic (being split into one module per idea; see scorer.py)."""

from ideaforge.tools.critic.scorer import *  # noqa: F403
from ideaforge.tools.critic.scorer import _load  # noqa: F401
