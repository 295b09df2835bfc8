"""Attention maps from one pixel, rollout and distance, and their figures."""
from .maps import (  # noqa: F401
    AttentionMaps,
    AttentionSummary,
    key_pixels,
    visible_pixels,
    rollout,
    attention_maps,
    attend,
    attention_summary,
)
from .figures import (  # noqa: F401
    attention_grid,
    spread,
    attention_rollout_figure,
    attention_distance_chart,
    pixel_picker,
    picked_pixel,
    visibility_figure,
    attention_mask_chart,
)
