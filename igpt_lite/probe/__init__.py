"""Linear and kNN probes of every layer, and the logit lens: estimators, tables, reports, projections,
figures and the `probe` and `lens` verbs."""
from .estimators import (  # noqa: F401
    DEFAULT_CS,
    DEFAULT_MAX_ITER,
    WHITEN_RCOND,
    Whitener,
    LinearProbe,
    KNNProbe,
    FeatureExtractor,
)
from .table import ProbeRow, ProbeTable, ProbeSummary, Margin, DepthShape  # noqa: F401
from .run import (  # noqa: F401
    probe_layers,
    load_split,
    baselines,
    probe_model,
    step_of,
    checkpoint_val_bpd,
    probe_checkpoints,
)
from .projection import (  # noqa: F401
    UMAP_PRECOMPUTED_BELOW,
    UMAP_POINTS,
    umap_embedding,
    layer_projections,
    LayerMap,
    layer_umap,
)
from .report import (  # noqa: F401
    REPORT_FORMAT,
    PROBE_VERSION,
    REPORT_FILE,
    REPORT_LIMIT,
    features_dir,
    model_hash,
    run_steps,
    ProbeReport,
    load_probe_report,
    probe_report,
)
from .lens import (  # noqa: F401
    LENS_FORMAT,
    LENS_FILE,
    LENS_LIMIT,
    LensRow,
    LensCurve,
    lens_bits,
    fit_tuned_lens,
    logit_lens,
)
from .figures import (  # noqa: F401
    probe_depth_chart,
    probe_checkpoints_chart,
    umap_scatter,
    probe_reference_chart,
    layer_view,
    probe_bits_chart,
)
