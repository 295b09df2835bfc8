"""Pretraining: config, loop, run folder, distributed, and the training curve."""
from .loop import (  # noqa: F401
    TrainConfig,
    pick_device,
    distributed,
    LOCK_NAME,
    run_lock,
    RUN_FIELDS,
    check_resume,
    batch_indices,
    train,
    pretrain,
)
from .figures import (  # noqa: F401
    training_curve,
)
