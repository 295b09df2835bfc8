"""Bias tests: the likelihood test on composed scenes and iEAT on embeddings, per layer, with
random-weight baselines; `run` does both on one model and gives a `BiasReport`."""
from .stats import (  # noqa: F401
    BOOTSTRAP,
    BiasRow,
    CrossedResult,
    IEATResult,
    QuadsResult,
    association,
    bits_test,
    bootstrap_ci,
    crossed_test,
    holm,
    ieat,
    n_partitions,
    permutation_test,
    quad_differences,
    quads_test,
    smallest_p_value,
)
from .sets import (  # noqa: F401
    PAIRS,
    SET_NAMES,
    check_target_sizes,
    compose_halves,
    compose_sets,
    load_ieat_folders,
)
from .embedding import EXTRACTIONS, BiasResult, bias_test, ieat_per_layer  # noqa: F401
from .likelihood import (  # noqa: F401
    LikelihoodResult,
    composed_bits,
    likelihood_association,
    likelihood_row,
    likelihood_scores,
    likelihood_test,
)
from .draws import (  # noqa: F401
    DESIGN,
    STUDY_FILE,
    Draw,
    DrawsResult,
    DrawsStudy,
    Spread,
    combined_p,
    composed_draw,
    likelihood_draws,
    paired_bits,
)
from .report import BiasReport, Extraction, SetInfo, run  # noqa: F401
from .figures import bias_per_layer_chart, draws_chart, permutation_chart  # noqa: F401
