"""Sampling and completion with a KV cache, their result and figures."""
from .sampling import (  # noqa: F401
    filter_logits,
    generate,
    complete,
    sample,
    Completions,
    complete_images,
)
from .figures import (  # noqa: F401
    completion_grid,
    CUT_COLOR,
    cut_preview,
)
