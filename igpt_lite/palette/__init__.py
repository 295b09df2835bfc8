"""The colour palette: k-means colours, pixels to tokens and back, and its report and figures."""
from .colors import (  # noqa: F401
    as_nhwc,
    Palette,
    PaletteReport,
    palette_sweep,
)
from .figures import (  # noqa: F401
    raster_sequence_figure,
    palette_swatches,
    palette_sweep_chart,
)
