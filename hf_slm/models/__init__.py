"""One folder per component family; each folder is self-contained so it can travel as remote code."""
# Each family adds one `from .family import *` line here.
from .unit_encoder import *  # noqa: F401,F403
from .speech_lm import *  # noqa: F401,F403
from .acoustic_lm import *  # noqa: F401,F403
from .unit_vocoder import *  # noqa: F401,F403
from .codec import *  # noqa: F401,F403
from .speech_llm import *  # noqa: F401,F403
from .ssl_encoder import *  # noqa: F401,F403
from .valle import *  # noqa: F401,F403
from .dialogue_lm import *  # noqa: F401,F403
from .registration import register_all

register_all()  # the Auto classes know every family as soon as any of them is importable
