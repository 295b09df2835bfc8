"""Pretraining: config, loop, run folder, distributed, and the training curve; fine-tuning."""
from ..history import EvalPoint, History  # noqa: F401  (what train and pretrain return)
from .config import (  # noqa: F401
    TrainConfig,
    pick_device,
)
from .distributed import (  # noqa: F401
    distributed,
)
from .run import (  # noqa: F401
    LOCK_NAME,
    run_lock,
    RUN_FIELDS,
    check_resume,
    require_resumable,
    TrainResult,
)
from .loop import (  # noqa: F401
    batch_indices,
    train,
    pretrain,
)
from .figures import (  # noqa: F401
    training_curve,
)
from .finetune import (  # noqa: F401
    FinetuneResult,
    finetune,
)
