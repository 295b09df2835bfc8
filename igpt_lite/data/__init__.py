"""Datasets: the registry (names, splits, loading, checks), embedded and generated sets, image files and
folders, the image sets of a zip (the rest: formats, download, tokens, scenes, as submodules)."""
from .registry import (  # noqa: F401
    SPLITS,
    SPLIT_FRACTIONS,
    VAL_FRACTION,
    DEFAULT_ROOT,
    FOLDER,
    FOLDER_RESOLUTION,
    Dataset,
    NATIVE_RESOLUTION,
    register_dataset,
    register_figures,
    dataset_names,
    check_dataset_name,
    data_root,
    native_resolution,
    dataset_folder,
    dataset_available,
    available_datasets,
    split_indices,
    holdout_indices,
    load_dataset,
    DatasetStatus,
    DatasetCheck,
    check_datasets,
)
from .embedded import (  # noqa: F401
    SHAPE_NAMES,
    SHAPE_COLOURS,
    make_shapes,
)
from .images import (  # noqa: F401
    resize,
    to_channels,
    GREY_MODES,
    MIN_FOLDER_DATASET,
    MAX_IMAGE_PIXELS,
    MODES,
    read_image,
    prepare_image,
    load_image,
    MIN_FOLDER_IMAGES,
    ImageFolder,
    load_image_files,
    load_image_folder,
)
from .sets import (  # noqa: F401
    SET_FOLDERS,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_BYTES,
    ImageSets,
    read_image_sets_zip,
)
